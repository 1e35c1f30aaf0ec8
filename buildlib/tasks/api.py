"""distrokit as a part of a bigger doit build: task dicts for a monorepo's own dodo.py.

    from buildlib.tasks.api import distrokit_tasks, monorepo_doit_config

    DOIT_CONFIG = monorepo_doit_config(cache="cache")   # cache=: the state travels with the store

    def task_os():
        yield from distrokit_tasks(["os/web.yml", "os/db.yml"], cache="cache", out_dir="out", prefix="os-")

Every task distrokit makes is named with `prefix` (`os-component:kernel`, `os-image:...`,
`os-layer:...`, `os-part:web/files`, `os-output:web`, `os-usage:web`), so it sits beside the
monorepo's own tasks. Edges work both ways:

- A `files:` entry whose `source:` another task writes is a `file_dep` of the spec's files part,
  named exactly as the spec spells it (relative sources are read from the folder doit runs in). When
  the generating task lists that path in its `targets`, doit runs it first; when the file changes,
  only the files part and the outputs of the specs that take it run again.
- Other tasks depend on distrokit's outputs by naming the output files (`out/web-initrd.img`) in
  their `file_dep`, or `os-output:web` in their `task_dep`. `output_files()` lists them. Both wait
  for `os-output:web`, the task that renames web's new files into `out_dir` once every one of web's
  output tasks succeeded (they write into a staging folder): a failed build changes none of them.

Each spec also gets a `usage` task that writes the same usage record `distrokit build` writes, so
`distrokit cache gc` keeps what doit-driven builds use. It runs when a part or an image of the spec
changed; a build with nothing changed runs no action at all (so the record's time is that of the
last build that changed something).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from doit.dependency import SqliteDB
from doit.globals import Globals
from doit.task import Task

from ..arches import DEFAULT_ARCH, arch_suffix, normalise
from ..collector import collect_rarely
from ..fsutil import xxh_value
from ..outputs import get_format
from ..outputs.compress import Compression
from ..outputs.initrd import DEFAULT_COMPRESSION
from ..rootfs import parts as rootfs
from ..rootfs.parts import FILES_PART
from ..spec.model import Spec, load_spec
from ..store import usage
from ..store.images import Store
from ..store.transport import Network
from . import plancache, terms
from .families import BuildOptions
from .identity import spec_state_id
from .keys import InputKeys, XXHashChecker
from .plan import Plan, SpecUse, usage_record
from .portable import store_codec
from .run import add_spec, family_groups, layer_family
from .terms import Terms

SpecList = Sequence[str | Path] | Mapping[str, Sequence[str | Path]]
FAMILY_DEPS = ("component", "layer")  # the families other tasks name in task_dep


def monorepo_doit_config(dep_file: str = ".doit.db", cache: str | Path | None = None, **extra: Any) -> dict[str, Any]:
    """DOIT_CONFIG for a monorepo's dodo.py: sqlite3 (dbm is unsafe here) and distrokit's content checker.

    With `cache` (the store given to distrokit_tasks), the database names store files relative to the
    store, so a CI job that restores the store to another folder finds its tasks up to date."""
    config = {"dep_file": dep_file, "backend": "sqlite3", "check_file_uptodate": XXHashChecker}
    if cache is not None:
        config["codec_cls"] = store_codec(Path(cache).resolve())
    return {**config, **extra}


def named_specs(specs: SpecList, arch: str = DEFAULT_ARCH) -> dict[str, list[Path]]:
    """{output name: spec files merged in order}. A plain list names each spec by its base name, with
    the architecture beyond amd64 as `distrokit build` names it (web-arm64), so both can share a store."""
    if isinstance(specs, Mapping):
        return {name: [Path(p) for p in files] for name, files in specs.items()}
    named: dict[str, list[Path]] = {}
    for path in specs:
        name = Path(path).stem + arch_suffix(arch)
        if name in named:
            raise ValueError(f"two specs are named {name!r}: pass a mapping {{name: [files]}} to tell them apart")
        named[name] = [Path(path)]
    return named


def distrokit_tasks(
    specs: SpecList,
    *,
    cache: str | Path,
    out_dir: str | Path,
    formats: Sequence[str] = ("kernel+initrd",),
    compression: Compression = DEFAULT_COMPRESSION,
    arch: str = DEFAULT_ARCH,
    pull: bool = False,
    network: Network | None = None,
    components: str | Path = "components",
    prefix: str = "distrokit-",
) -> Iterator[dict[str, Any] | Task]:
    """The doit tasks that build `specs` into `out_dir` through the store `cache`, named with `prefix`.

    `specs` is a list of spec files (each built on its own, named by its base name) or a mapping
    {name: [spec files merged in order]}. `components` is the folder of component recipes that
    `distrokit/NAME` images are built from (`@pkg:` folders are relative to the spec as always).
    Raises the spec's own errors (BadInput, SpecError) when a spec is wrong, before any task runs."""
    collect_rarely()  # doit keeps every task it loads until it exits
    arch = normalise(arch)  # `aarch64` and `linux/arm64` are arm64, as for `distrokit build --arch`
    read_saved_states_at_once(Globals.dep_manager)
    store = Store(Path(cache).resolve(), arch)
    component_root = Path(components).resolve()
    plan = Plan(store, components=component_root)  # components built for the store's architecture
    loaded: list[tuple[Spec, BuildOptions]] = []
    cached: list[plancache.CachedSpec] = []
    around = plancache.surroundings(component_root)
    for name, files in named_specs(specs, arch).items():
        options = BuildOptions(
            cache=store.root,
            out_dir=Path(out_dir).resolve(),
            name=name,
            formats=tuple(formats),
            compression=compression,
            pull=pull,
            arch=arch,
            network=network,
            sources_from_tasks=True,
        )
        hit, spec = _plan_spec(plan, files, options, component_root, around)
        if hit is not None:
            cached.append(hit)
        if spec is not None:
            loaded.append((spec, options))
    # a spec's tasks carry its state id (its name and spec files), not its name alone
    specs_by_name = {spec_state_id(options.name, spec.files_read, store.root): spec for spec, options in loaded}
    outputs_of = _outputs_of(plan.uses, [*plan.tasks, *(task for hit in cached for task in hit.tasks)])
    yield from family_groups(prefix)  # before their tasks: doit makes a group its tasks join
    for task in plan.tasks:
        yield _prefixed(_with_sources(task, specs_by_name), prefix)
    for hit in cached:
        for task in hit.tasks:
            yield _prefixed(task, prefix)
    yield layer_family(plan, prefix)
    usage_deps = {hit.use.state: hit.usage_deps for hit in cached}
    for use in plan.uses:
        yield _prefixed(usage_task(store, use, outputs_of[use.state], usage_deps.get(use.state)), prefix)


def read_saved_states_at_once(dep_manager: Any) -> None:
    """doit's sqlite3 backend reads each task's saved state with a query of its own as it checks the
    task: 2,600 queries for a 200-spec monorepo, more than a tenth of a no-change run's own work. The
    first read reads them all in one query instead (`doit list` reads none and still reads none)."""
    backend: Any = getattr(dep_manager, "backend", None)
    one_by_one = getattr(backend, "_get_task_data", None)
    if type(backend) is not SqliteDB or one_by_one is None or not isinstance(getattr(backend, "_cache", None), dict):
        return  # another backend, or a doit whose sqlite3 backend is built otherwise: as doit reads

    def all_at_once(task_id: str) -> Any:
        backend._get_task_data = one_by_one  # once: a task saved later is read as doit reads it
        try:
            for row in backend._conn.execute("select task_id, task_data from doit"):
                backend._cache.setdefault(row["task_id"], row["task_data"])
        except (sqlite3.Error, KeyError, TypeError, AttributeError):
            pass  # read as doit reads them, one by one
        return backend._cache.get(task_id) or one_by_one(task_id)

    backend._get_task_data = all_at_once


def _outputs_of(uses: Sequence[SpecUse], tasks: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """Each spec's output tasks (a stage, the boot files, one a format), before doit takes the dicts over."""
    outputs_of: dict[str, list[str]] = {use.state: [] for use in uses}
    for task in tasks:
        state = task["name"].split("/", 1)[0]
        if task["basename"] == "output" and state in outputs_of:
            outputs_of[state].append(f"output:{task['name']}")
    return outputs_of


def _plan_spec(
    plan: Plan, files: list[Path], options: BuildOptions, component_root: Path, around: dict[str, Any] | None
) -> tuple[plancache.CachedSpec | None, Spec | None]:
    """One spec's tasks into `plan`: from the plan cache when nothing planning read has changed (its
    part and output tasks, kept apart), else planned for real (and its plan kept for the next run).
    `around`: plancache.surroundings(), read once for every spec."""
    context = plancache.context(options, around)
    hit = plancache.load(plan.store, files, options, component_root, context)
    if hit is not None:
        first = len(plan.tasks)
        for ref, folder in hit.images:
            plan.add_image(ref, folder, options)
        for task in plan.tasks[first:]:  # explain's terms, as add_spec gives a spec's new image tasks
            if task["basename"] == "image":
                task["uptodate"].append(Terms(terms.image_terms(plan.store, task["name"], options)))
        plan.uses.append(hit.use)
        return hit, None
    before = plancache.spec_inputs(files) if context is not None else []
    spec = load_spec(files, resolve_pkg=plan.resolver)
    add_spec(plan, spec, options, component_root)  # as the CLI: explain's terms, doit clean
    plancache.save(plan, spec, options, component_root, context, before)
    return None, spec


def output_files(out_dir: str | Path, name: str, formats: Sequence[str] = ("kernel+initrd",)) -> list[str]:
    """The files the output task of spec `name` writes: what another task names in its file_dep."""
    prefix = Path(out_dir).resolve() / name
    return [str(path) for fmt in formats for path in get_format(fmt).targets(prefix)]


def generated_sources(spec: Spec) -> list[str]:
    """`files` sources as the spec spells them, missing ones included: another task may write them."""
    paths = [item.source for item in spec.files if item.source is not None]
    return [path for path in paths if not Path(path).is_dir()]


def usage_task(
    store: Store, use: SpecUse, output_tasks: Sequence[str], file_dep: Sequence[str] | None = None
) -> dict[str, Any]:
    """Write the spec's usage record (the one `distrokit build` writes) when its parts or images changed,
    after the spec's `output_tasks` (a stage, the shared boot files and one task a format). `file_dep`:
    its pointers and image records, when a cached plan knows them (see plancache)."""
    if file_dep is None:
        file_dep = plancache.usage_deps(store, use)

    def write() -> None:
        record, blob_paths = usage_record(store, use, time.time())
        usage.write_usage(store.root, record, blob_paths)

    return {
        "basename": "usage",
        "name": use.state,
        "doc": f"record what {use.name} uses, for `distrokit cache gc`",
        "actions": [write],
        "file_dep": list(file_dep),
        "targets": [str(usage.usage_path(store.root, use.state))],
        "task_dep": list(output_tasks),
        "verbosity": 0,
    }


def _with_sources(task: dict[str, Any], specs: Mapping[str, Spec]) -> dict[str, Any]:
    """A files part depends on every source file, also one another task has not written yet; its spec
    key (which notes which sources exist) is taken when doit checks the task, after that task ran."""
    if task["basename"] != "part" or not task["name"].endswith(f"/{FILES_PART}"):
        return task
    spec = specs[task["name"].rsplit("/", 1)[0]]
    known = {str(Path(dep).resolve()) for dep in task.get("file_dep", ())}
    extra = [path for path in generated_sources(spec) if str(Path(path).resolve()) not in known]
    part = next(part for part in rootfs.plan_parts(spec) if part.name == FILES_PART)
    uptodate = [_late_keys(check, spec, part) if isinstance(check, InputKeys) else check for check in task["uptodate"]]
    return {**task, "file_dep": [*task.get("file_dep", ()), *extra], "uptodate": uptodate}


class LateInputKeys(InputKeys):
    """InputKeys computed when doit checks the task (after the tasks it depends on ran), not when it is made."""

    def __init__(self, compute: Callable[[], dict[str, Any]]) -> None:
        self._compute = compute  # no super().__init__: the keys are not known yet

    @property
    def keys(self) -> dict[str, str]:  # type: ignore[override]
        return InputKeys(self._compute()).keys


def _late_keys(check: InputKeys, spec: Spec, part: rootfs.Part) -> LateInputKeys:
    early = dict(check.keys)
    return LateInputKeys(lambda: {**early, "spec": xxh_value(rootfs.part_fragment(spec, part))})


def _prefixed(task: dict[str, Any], prefix: str) -> dict[str, Any]:
    if not prefix:
        return task
    renamed = {**task, "basename": prefix + task["basename"]}
    renamed["task_dep"] = [prefix + dep for dep in task.get("task_dep", ())]
    return renamed
