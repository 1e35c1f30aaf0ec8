"""The only module that knows doit: every build step as a content-keyed doit task.

Task families (doit basenames): `component` builds an image from components/, `image` makes sure an
image is in the store and records its digests, `part` writes one compressed segment of the root,
`output` writes the boot media. Each is kept up to date by xxhash keys over its real inputs, never
by timestamps alone, and every result is written atomically, so a killed build leaves nothing half done.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from doit.cmd_base import TaskLoader2
from doit.dependency import FileChangedChecker
from doit.doit_cmd import DoitMain
from doit.exceptions import TaskFailed
from doit.loader import generate_tasks
from doit.reporter import ConsoleReporter
from doit.tools import config_changed

from . import bundles, components, images, outputs, rootfs
from .errors import DistrokitError
from .fsutil import read_json, write_json_atomic, xxh_file, xxh_value
from .images import Image, Store
from .outputs.initrd import write_entry, write_segment
from .refs import ImageRef
from .spec import Spec, load_spec

BUILDER_VERSION = "1"


# content-keyed file checker -----------------------------------------------------------------
class XXHashChecker(FileChangedChecker):
    """Decides by content (xxhash), memoised on (inode, size, mtime_ns) so big blobs hash once."""

    _memo: dict[tuple[str, int, int, int], str] = {}

    def _key(self, path: str) -> str:
        st = os.stat(path)
        memo_key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        digest = self._memo.get(memo_key)
        if digest is None:
            digest = xxh_file(Path(path))
            self._memo[memo_key] = digest
        return digest

    def check_modified(self, file_path: str, file_stat: os.stat_result, state: Any) -> bool:
        mtime_ns, size, digest = state
        if file_stat.st_mtime_ns == mtime_ns and file_stat.st_size == size:
            return False
        return bool(file_stat.st_size != size or self._key(file_path) != digest)

    def get_state(self, dep: str, current_state: Any) -> Any:
        st = os.stat(dep)
        if current_state and tuple(current_state[:2]) == (st.st_mtime_ns, st.st_size):
            return None
        return st.st_mtime_ns, st.st_size, self._key(dep)


# options and errors -------------------------------------------------------------------------
@dataclass(frozen=True)
class BuildOptions:
    cache: Path
    out_dir: Path
    name: str
    formats: tuple[str, ...] = ("kernel+initrd",)
    pull: bool = False


@dataclass
class ErrorSink:
    """Collects the DistrokitErrors task actions raise, so the caller can re-raise the first."""

    errors: list[DistrokitError] = field(default_factory=list)

    def guard(self, action: Callable[..., None]) -> Callable[..., TaskFailed | None]:
        def run(*args: Any) -> TaskFailed | None:
            try:
                action(*args)
            except DistrokitError as exc:
                self.errors.append(exc)
                return TaskFailed(str(exc))
            return None

        run.__name__ = action.__name__
        return run


# paths --------------------------------------------------------------------------------------
def record_path(store: Store, ref: str) -> Path:
    return store.root / "images" / f"{xxh_value(ref)}.json"


def segment_path(store: Store, spec_name: str, part: str) -> Path:
    return store.root / "build" / spec_name / f"{part}.cpio.gz"


def load_images(store: Store, refs: Sequence[str]) -> dict[str, Image]:
    loaded = {}
    for ref in refs:
        record = read_json(record_path(store, ref))
        loaded[ref] = store.image_by_digest(ref, record["manifest"])
    return loaded


# components ---------------------------------------------------------------------------------
def component_folder(ref: str, component_root: Path, resolver: components.PkgResolver) -> Path | None:
    """The component folder that builds `ref`: from an `@pkg:` template, or components/NAME for distrokit/NAME."""
    if ref in resolver.folders:
        return resolver.folders[ref]
    parsed = ImageRef.parse(ref)
    if parsed.domain != "docker.io" or not parsed.path.startswith(components.IMAGE_PREFIX + "/"):
        return None
    folder = component_root / parsed.path.split("/", 1)[1]
    return folder if (folder / components.RECIPE).is_file() else None


def component_task(store: Store, folder: Path, sink: ErrorSink) -> dict[str, Any]:
    recipe = components.load_recipe(folder)
    packages = components.pinned_packages(store.root, recipe)
    key = components.recipe_input_key(recipe, packages)

    def build() -> None:
        components.build(store, recipe, packages)

    return {
        "basename": "component",
        "name": recipe.name,
        "doc": f"build the {recipe.name} image from Debian packages",
        "actions": [sink.guard(build)],
        "uptodate": [config_changed(xxh_value(key)), lambda: store.lookup(recipe.ref) is not None],
        "verbosity": 0,
    }


# images -------------------------------------------------------------------------------------
def image_task(store: Store, ref: str, options: BuildOptions, sink: ErrorSink, component: str | None) -> dict[str, Any]:
    target = record_path(store, ref)
    parsed = ImageRef.parse(ref)

    def fetch() -> None:
        image = images.ensure_image(store, parsed, force_pull=options.pull and component is None)
        write_json_atomic(target, image.record())

    def current() -> bool:
        if options.pull and component is None or not target.is_file():
            return False
        return read_json(target)["manifest"] == store.lookup(parsed)

    return {
        "basename": "image",
        "name": ref,
        "doc": f"make sure {parsed.familiar()} is in the store",
        "actions": [sink.guard(fetch)],
        "targets": [str(target)],
        "uptodate": [current],
        "task_dep": [f"component:{component}"] if component else [],
        "verbosity": 0,
    }


# parts and outputs --------------------------------------------------------------------------
def part_tree(store: Store, spec: Spec, part: rootfs.Part) -> rootfs.Tree:
    return rootfs.part_tree(store, spec, part, load_images(store, list(part.images)))


def part_task(store: Store, spec: Spec, part: rootfs.Part, options: BuildOptions, sink: ErrorSink) -> dict[str, Any]:
    target = segment_path(store, options.name, part.name)

    def write() -> None:
        write_segment(part_tree(store, spec, part).entries(), target)

    return {
        "basename": "part",
        "name": f"{options.name}/{part.name}",
        "doc": f"write the {part.name} segment of {options.name}",
        "actions": [sink.guard(write)],
        "file_dep": [str(record_path(store, ref)) for ref in part.images] + rootfs.part_sources(spec, part),
        "targets": [str(target)],
        "uptodate": [config_changed(xxh_value([BUILDER_VERSION, rootfs.part_fragment(spec, part)]))],
        "verbosity": 0,
    }


def output_task(
    store: Store, spec: Spec, parts: Sequence[rootfs.Part], options: BuildOptions, sink: ErrorSink
) -> dict[str, Any]:
    segments = tuple(segment_path(store, options.name, part.name) for part in parts)
    prefix = options.out_dir / options.name
    formats = [outputs.get_format(name) for name in options.formats]
    kernel_copy = store.root / "build" / options.name / "kernel"
    kernel_ref = spec.kernel.image if spec.kernel else None

    def write() -> None:
        if spec.kernel is not None and kernel_ref is not None:
            image = load_images(store, [kernel_ref])[kernel_ref]
            binary, _ = rootfs.kernel_files(store, spec.kernel, image)
            write_entry(binary, kernel_copy)
        built = outputs.BuiltParts(
            kernel_copy if kernel_ref else None,
            spec.kernel.cmdline if spec.kernel else "",
            segments,
            root=lambda: rootfs.merged_root(parts, lambda part: part_tree(store, spec, part)),
        )
        options.out_dir.mkdir(parents=True, exist_ok=True)
        for fmt in formats:
            fmt.write(built, prefix)

    file_dep = [str(s) for s in segments] + ([str(record_path(store, kernel_ref))] if kernel_ref else [])
    return {
        "basename": "output",
        "name": f"{options.name}",
        "doc": f"write {', '.join(options.formats)} for {options.name}",
        "actions": [sink.guard(write)],
        "file_dep": file_dep,
        "targets": [str(path) for fmt in formats for path in fmt.targets(prefix)],
        "uptodate": [
            config_changed(xxh_value([BUILDER_VERSION, list(options.formats), spec.kernel and spec.kernel.cmdline]))
        ],
        "verbosity": 0,
    }


def spec_tasks(
    spec: Spec,
    options: BuildOptions,
    component_root: Path,
    resolver: components.PkgResolver,
    sink: ErrorSink,
    seen: set[str],
) -> Iterator[dict[str, Any]]:
    """Every task one spec needs; `seen` shares component and image tasks between specs."""
    store = Store(options.cache)
    for ref in spec.images():
        folder = component_folder(ref, component_root, resolver)
        if folder is not None and f"component:{folder.name}" not in seen:
            seen.add(f"component:{folder.name}")
            yield component_task(store, folder, sink)
        if f"image:{ref}" not in seen:
            seen.add(f"image:{ref}")
            yield image_task(store, ref, options, sink, folder.name if folder else None)
    parts = rootfs.plan_parts(spec)
    for part in parts:
        yield part_task(store, spec, part, options, sink)
    yield output_task(store, spec, parts, options, sink)


# running doit -------------------------------------------------------------------------------
class RecordingReporter(ConsoleReporter):  # type: ignore[misc]
    """doit's console report, also kept as lists: which tasks ran, which were up to date."""

    last: RecordingReporter | None = None

    def __init__(self, outstream: Any, options: Any) -> None:
        super().__init__(outstream, options)
        self.executed: list[str] = []
        self.skipped: list[str] = []
        RecordingReporter.last = self

    def execute_task(self, task: Any) -> None:
        if task.actions:
            self.executed.append(task.name)
        super().execute_task(task)

    def skip_uptodate(self, task: Any) -> None:
        if task.actions:
            self.skipped.append(task.name)
        super().skip_uptodate(task)


def doit_config(cache: Path, outstream: IO[str] | None = None) -> dict[str, Any]:
    """doit's settings for distrokit: its database in the cache, content checks, our reporter."""
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "outfile": outstream if outstream is not None else io.StringIO(),
        "dep_file": str(cache / "doit.db"),
        "backend": "sqlite3",
        "check_file_uptodate": XXHashChecker,
        "reporter": RecordingReporter,
        "verbosity": 0,
    }


class _Loader(TaskLoader2):  # type: ignore[misc]
    def __init__(self, task_dicts: list[dict[str, Any]], config: dict[str, Any]) -> None:
        super().__init__()
        self.task_dicts = task_dicts
        self.config = config

    def setup(self, opt_values: Any) -> None:
        pass

    def load_doit_config(self) -> dict[str, Any]:
        return self.config

    def load_tasks(self, cmd: Any, pos_args: Any) -> list[Any]:
        return list(generate_tasks("distrokit", (task_dict for task_dict in self.task_dicts)))


@dataclass(frozen=True)
class BuildReport:
    executed: tuple[str, ...]
    up_to_date: tuple[str, ...]


def run_tasks(
    task_dicts: list[dict[str, Any]],
    cache: Path,
    sink: ErrorSink,
    args: Sequence[str] = (),
    outstream: IO[str] | None = None,
) -> BuildReport:
    """Run tasks through doit's own runner; raise the first DistrokitError an action raised."""
    config = doit_config(cache, outstream)
    # GLOBAL holds option defaults for every doit command; `config_filenames=()` keeps a project's
    # pyproject.toml or doit.cfg in the working folder from changing how distrokit runs doit.
    code = DoitMain(_Loader(task_dicts, config), config_filenames=(), extra_config={"GLOBAL": config}).run(
        ["run", *args]
    )
    reporter = RecordingReporter.last
    if sink.errors:
        raise sink.errors[0]
    if code != 0:
        raise DistrokitError(f"doit failed (exit {code}); run with --debug for details")
    return BuildReport(tuple(reporter.executed) if reporter else (), tuple(reporter.skipped) if reporter else ())


def build_spec(
    spec_paths: Sequence[Path],
    options: BuildOptions,
    component_root: Path,
    jobs: int = 1,
    outstream: IO[str] | None = None,
) -> BuildReport:
    resolver = components.PkgResolver()
    spec = load_spec(spec_paths, resolve_pkg=resolver)
    bundles.check_volumes(spec)  # a spec error that needs no image: report it before pulling any
    sink = ErrorSink()
    tasks = list(spec_tasks(spec, options, component_root, resolver, sink, set()))
    args = ["-n", str(jobs), "-P", "thread"] if jobs > 1 else []
    return run_tasks(tasks, options.cache, sink, args, outstream)


def ensure_images(
    spec_paths: Sequence[Path], options: BuildOptions, component_root: Path, outstream: IO[str] | None = None
) -> tuple[Spec, dict[str, Image]]:
    """Only the component and image tasks of a spec: every image in the store, loaded (for `sbom`)."""
    resolver = components.PkgResolver()
    spec = load_spec(spec_paths, resolve_pkg=resolver)
    sink = ErrorSink()
    wanted = ("component", "image")
    tasks = [t for t in spec_tasks(spec, options, component_root, resolver, sink, set()) if t["basename"] in wanted]
    run_tasks(tasks, options.cache, sink, (), outstream)
    return spec, load_images(Store(options.cache), list(spec.images()))


def project_tasks(spec_dir: Path, out_dir: Path, cache: Path, component_root: Path) -> Iterator[dict[str, Any]]:
    """Tasks that build every spec in `spec_dir` into `out_dir` (what `doit` runs from dodo.py)."""
    seen: set[str] = set()
    resolver = components.PkgResolver()
    sink = ErrorSink()
    for spec_file in sorted(spec_dir.glob("*.yml")):
        spec = load_spec([spec_file], resolve_pkg=resolver)
        bundles.check_volumes(spec)
        options = BuildOptions(cache=cache, out_dir=out_dir, name=spec_file.stem)
        yield from spec_tasks(spec, options, component_root, resolver, sink, seen)
