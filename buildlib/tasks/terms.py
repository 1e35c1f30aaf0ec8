"""What each task reads, in the words of the spec, saved with the task so `explain` can name a change.

The content keys (`keys.InputKeys`) decide whether a task runs; they are hashes. Beside them every
task saves a small, readable `Terms` record: `services[1] (getty): command` -> its value, `formats`,
`image REF` -> its digest. `explain` compares the saved record with today's and says what changed the
way the user wrote it. Terms never decide anything: as an uptodate check they are always satisfied.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..fsutil import read_json
from ..rootfs import bundles
from ..rootfs.parts import BUNDLE_KIND, FILES_PART, IMAGE_KIND, INIT_PART, KERNEL_PART, VOLUME_KIND, Part, plan_parts
from ..spec.model import Container, Spec
from ..spec.refs import ImageRef
from ..store.images import Store
from .families import BuildOptions, record_path
from .identity import spec_state_id

SAVED_TERMS = "_distrokit_terms"
CONTAINER_IDS = "container ids"
TermValues = dict[str, Any]


class Terms:
    """doit uptodate object that is always satisfied and saves `compute()` after a successful run."""

    def __init__(self, compute: Callable[[], TermValues]) -> None:
        self.compute = compute

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: {SAVED_TERMS: self.compute()})

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        return True

    def changes(self, values: Mapping[str, Any]) -> list[str]:
        """One line per term that differs from the saved ones; nothing when none were saved."""
        saved: TermValues | None = values.get(SAVED_TERMS)
        if saved is None:
            return []
        now = self.compute()
        names = list(dict.fromkeys([*saved, *now]))
        return [describe(name, saved.get(name), now.get(name)) for name in names if saved.get(name) != now.get(name)]


def describe(name: str, old: Any, new: Any) -> str:
    if name.startswith("image "):
        return f"{name}: digest {_digest(old)} -> {_digest(new)}"
    if name.endswith(CONTAINER_IDS):
        return (
            f"{name} changed (each container's uid and gid follow the names and order of all containers, "
            "so a rename or a new container rewrites the bundles that may use them)"
        )
    if old is None:
        return f"{name}: added"
    if new is None:
        return f"{name}: removed"
    before, after = _short(old), _short(new)
    return f"{name}: {before} -> {after}" if len(before) + len(after) <= 80 else name


def _digest(value: Any) -> str:
    if not value:
        return "none"
    algorithm, _, hexdigits = str(value).partition(":")
    return f"{algorithm}:{hexdigits[:12]}.." if hexdigits else str(value)


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


# what each family reads -------------------------------------------------------------------------
def container_label(container: Container) -> str:
    return f"{container.section.value}[{container.index}] ({container.name})"


def _container_terms(container: Container) -> TermValues:
    label = container_label(container)
    return {f"{label}: {key}": value for key, value in container.to_dict().items() if key not in ("name",)}


def _image_digests(store: Store, refs: tuple[str, ...]) -> TermValues:
    out: TermValues = {}
    for ref in refs:
        record = record_path(store, ref)
        out[f"image {ImageRef.parse(ref).familiar()}"] = read_json(record)["manifest"] if record.is_file() else None
    return out


def part_terms(store: Store, spec: Spec, part: Part, options: BuildOptions) -> Callable[[], TermValues]:
    def compute() -> TermValues:
        values = _image_digests(store, part.images)
        values["--compression"] = options.compression.value
        if part.family == KERNEL_PART and spec.kernel is not None:
            values["kernel.tar"] = spec.kernel.tar
        elif part.family == INIT_PART:
            values["init"] = list(spec.init)
        elif part.family == FILES_PART:
            values.update({f"files[{i}] ({f.path})": f.to_dict() for i, f in enumerate(spec.files)})
        elif part.family == VOLUME_KIND:
            values.update({f"volumes ({v.name})": v.to_dict() for v in spec.volumes if v.name == part.subject})
        elif part.family in (BUNDLE_KIND, IMAGE_KIND):
            section, index = part.subject.split("/")
            container = getattr(spec, section)[int(index)]
            values.update(_container_terms(container))
            if part.family == BUNDLE_KIND:
                ids = dict(bundles.context_of(spec).ids)
                values[f"{container_label(container)}: {CONTAINER_IDS}"] = ids
        return values

    return compute


def output_terms(spec: Spec, options: BuildOptions, which: str = "") -> Callable[[], TermValues]:
    """`which`: the output task's own part (a format, a stage, `boot`), so adding a format to a build
    does not rerun the others (every format is its own task)."""

    def compute() -> TermValues:
        kernel = spec.kernel
        return {
            "formats": which or ", ".join(options.formats),
            "kernel.cmdline": kernel.cmdline if kernel and _holds_cmdline(which) else None,
            "kernel.image": kernel.image if kernel else None,
        }

    return compute


def _holds_cmdline(which: str) -> bool:
    """Whether an output task's files carry the command line (media.Media keys them the same way)."""
    from ..outputs import FORMAT_HOMES, get_format
    from ..outputs.formats import STAGE_HOMES, get_stage

    if which in FORMAT_HOMES:
        return get_format(which).uses_cmdline
    if which.startswith("stage-") and which[len("stage-") :] in STAGE_HOMES:
        return get_stage(which[len("stage-") :]).disk
    return True


def image_terms(store: Store, ref: str, options: BuildOptions) -> Callable[[], TermValues]:
    parsed = ImageRef.parse(ref)

    def compute() -> TermValues:
        return {f"image {parsed.familiar()}": store.lookup(parsed), "--arch": options.arch}

    return compute


def attach(tasks: list[dict[str, Any]], store: Store, spec: Spec, options: BuildOptions) -> None:
    """Give every task of one spec's build its Terms (the tasks `families` made for it)."""
    state = spec_state_id(options.name, spec.files_read, store.root)  # the spec's tasks carry its state id
    parts = {f"{state}/{part.name}": part for part in plan_parts(spec)}
    for task in tasks:
        basename, name = task["basename"], task["name"]
        if basename == "part" and name in parts:
            terms = Terms(part_terms(store, spec, parts[name], options))
        elif basename == "output" and name.startswith(f"{state}/"):
            terms = Terms(output_terms(spec, options, name.split("/", 1)[1]))
        elif basename == "image":
            terms = Terms(image_terms(store, name, options))
        else:
            continue
        if not any(isinstance(check, Terms) for check in task.get("uptodate", [])):
            task.setdefault("uptodate", []).append(terms)
