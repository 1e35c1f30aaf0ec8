"""A plan: the tasks of one or more spec builds that share a store, put together from the task families
(`families` for components, images, layers and parts, `media` for outputs), with what runs after a
successful build (usage records) and the audit's recomputations of the outputs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import outputs
from ..debian import archive, recipes
from ..lazy import lazy_module
from ..outputs.initrd import segment_path
from ..outputs.staging import OutputSet
from ..rootfs import layers
from ..rootfs import parts as rootfs
from ..spec.model import Kernel, Spec
from ..store import usage
from ..store.images import Store
from . import audit
from .families import (
    OUTPUT_PROBES,
    BuildOptions,
    ErrorSink,
    check_buildable,
    check_lock,
    component_folder,
    component_task,
    image_task,
    layer_tasks,
    load_images,
    output_inputs,
    output_probes,
    part_recheck,
    part_task,
    pin_components,
    pointer_path,
    remember_kernel,
    state_dir,
    tar_image_task,
    tar_records,
)
from .identity import spec_state_id
from .media import Media

if TYPE_CHECKING:  # LinuxKit package folders and --secure-boot load what they need when a spec has them
    from ..release import pinning
    from . import packages
else:
    pinning, packages = lazy_module("buildlib.release.pinning"), lazy_module("buildlib.tasks.packages")


def output_recheck(media: Media) -> audit.Recheck:
    """Every format's files written again somewhere else (stages beside them), from the segments the
    parts' pointers name: what the audit compares with the outputs a build kept."""
    store, spec, parts, options, state = media.store, media.spec, media.parts, media.options, media.state
    formats = [outputs.get_format(name) for name in options.formats]
    prefix = options.out_dir / options.name
    inputs = output_inputs(spec, parts, options)

    def current() -> dict[str, Path]:
        return {path.name: path for fmt in formats for path in fmt.targets(prefix)}

    def recompute(scratch: Path) -> dict[str, Path]:
        fresh = scratch / options.name
        media.write_everything(fresh, fresh.parent / "stages")
        return {path.name: path for fmt in formats for path in fmt.targets(fresh)}

    return audit.Recheck(
        f"output:{state}",
        current,
        recompute,
        lambda: output_probes(store, spec, parts, inputs, state),
        audit.probes_path(state_dir(store, state), OUTPUT_PROBES),
    )


def component_weight(store: Store, folder: Path, options: BuildOptions) -> int:
    """The bytes of the .debs a component is built from (by its lock, else its pin; 0 unpinned): how
    long its build takes, roughly, so the longest start first."""
    recipe = recipes.load_recipe(folder, options.arch)
    locked = options.lock.packages(recipe.build_name, recipe.key) if options.lock is not None else None
    packages = locked if locked is not None else archive.cached_pins(store.root, recipe)
    return sum(package.size for package in packages or ())


@dataclass(frozen=True, eq=False)
class SpecUse:
    """What one spec of a plan reads: its name, state id, files, images and parts."""

    name: str
    state: str
    files: tuple[str, ...]
    refs: tuple[str, ...]
    parts: tuple[str, ...]
    kernel: Kernel | None = None


def usage_record(store: Store, use: SpecUse, now: float) -> tuple[usage.UsageRecord, list[Path]]:
    """The usage record of a spec just built, read from the store's image records and pointers."""
    loaded = load_images(store, list(use.refs))
    blobs: dict[str, None] = {}
    files: dict[Path, None] = {}
    for image in loaded.values():
        if not image.config_digest:  # taken from --input-tar: nothing of it in the store
            continue
        blobs.update(dict.fromkeys([image.manifest_digest, image.config_digest]))
        for layer in image.layers:
            blobs[layer.digest] = None
            files[layers.index_path(store, layer)] = None
            files[layers.uncompressed_path(store, layer)] = None
    pointers = [pointer_path(store, use.state, part) for part in use.parts]
    segments = [pointer.read_text().strip() for pointer in pointers if pointer.is_file()]
    files.update(dict.fromkeys(segment_path(store.root, key) for key in segments))
    blob_paths = [store.blob_path(digest) for digest in blobs]
    record = usage.UsageRecord(
        spec=use.name,
        state=use.state,
        spec_files=tuple(str(Path(path).resolve()) for path in use.files),
        images=tuple(usage.ImageUse(ref, image.manifest_digest) for ref, image in loaded.items()),
        blobs=tuple(blobs),
        files=tuple(path.relative_to(store.root).as_posix() for path in files if path not in blob_paths),
        segments=tuple(dict.fromkeys(segments)),
        timestamp=now,
    )
    return record, blob_paths


@dataclass(eq=False)
class Plan:
    """The tasks of one or more spec builds that share a store; `layers` are created once images ran."""

    store: Store
    sink: ErrorSink = field(default_factory=ErrorSink)
    components: Path | None = None  # the project's component folder (distrokit/NAME), before the built-in ones
    resolver: recipes.PkgResolver = field(init=False)  # `@pkg:` components for the store's architecture
    tasks: list[dict[str, Any]] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    uses: list[SpecUse] = field(default_factory=list)
    rechecks: list[audit.Recheck] = field(default_factory=list)
    output_sets: list[OutputSet] = field(default_factory=list)  # each spec's outputs, staged until published
    audit: bool = False
    warnings: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _component_folders: dict[str, Path] = field(default_factory=dict)  # by task name

    def __post_init__(self) -> None:
        self.resolver = recipes.PkgResolver(self.store.arch, self.components)

    def add_spec(self, spec: Spec, options: BuildOptions, component_root: Path) -> None:
        self.warnings.extend(check_lock(spec, options, component_root, self.resolver))
        check_buildable(spec, options)  # what needs no image: reported before any pull
        from_tar = tar_records(self.store, spec, options)
        # --secure-boot: the signed loaders' image, built from its pinned .debs as any component is
        loaders = pinning.secure_boot_image(self.resolver) if options.secure_boot else None
        refs = (*spec.images(), *([loaders] if loaders else []))
        built_here = [ref for ref in refs if ref not in from_tar and ref not in self.resolver.packages]
        folders = [component_folder(ref, component_root, self.resolver) for ref in built_here]
        pin_components(self.store, [folder for folder in folders if folder is not None], options)
        first = len(self.tasks)
        for ref in refs:
            if ref in from_tar:
                if self._first(f"image:{ref}"):
                    self.refs.append(ref)
                    self.tasks.append(tar_image_task(self.store, ref, from_tar[ref], self.sink))
                continue
            if ref in self.resolver.packages:
                self._add_package(ref, options)
                continue
            self.add_image(ref, component_folder(ref, component_root, self.resolver), options)
        self._longest_components_first(first, options)
        parts = rootfs.plan_parts(spec)
        state = spec_state_id(options.name, spec.files_read, self.store.root)
        self.tasks.extend(part_task(self.store, spec, part, options, self.sink, state) for part in parts)
        media = Media(self.store, spec, parts, options, self.sink, state, loaders=loaders)
        self.tasks.extend(media.tasks())
        self.output_sets.append(media.output_set)
        self.rechecks.extend(part_recheck(self.store, spec, part, options, state) for part in parts)
        self.rechecks.append(output_recheck(media))
        self.audit = self.audit or options.audit
        use = SpecUse(options.name, state, spec.files_read, refs, tuple(p.name for p in parts), spec.kernel)
        self.uses.append(use)

    def add_image(self, ref: str, folder: Path | None, options: BuildOptions) -> None:
        """The task that puts image `ref` in the store, after the one that builds it from the component
        `folder` (None: pulled); once however many specs name it."""
        if folder is not None and self._first(f"component:{folder}"):
            task = component_task(self.store, folder, self.sink, options)
            self._component_folders[task["name"]] = folder
            self.tasks.append(task)
        if self._first(f"image:{ref}"):
            self.refs.append(ref)
            name = recipes.load_recipe(folder, options.arch).build_name if folder else None
            self.tasks.append(image_task(self.store, ref, options, self.sink, name))

    def _longest_components_first(self, first: int, options: BuildOptions) -> None:
        """The component tasks made from `first` on, in their places, biggest .debs first: doit starts
        tasks in the order it is given them, and a long build started last ran alone at the end (rngd's
        48 packages after eight small components). Only the order tasks start in changes."""
        # the components built from Debian packages; a LinuxKit package folder's buildah task stays put
        folders = {
            index: self._component_folders[task["name"]]
            for index, task in enumerate(self.tasks[first:], first)
            if task["basename"] == "component" and task["name"] in self._component_folders
        }
        places = list(folders)
        weights = {index: component_weight(self.store, folder, options) for index, folder in folders.items()}
        ordered = sorted(places, key=lambda index: -weights[index])
        moved = [self.tasks[index] for index in ordered]
        for index, task in zip(places, moved, strict=True):
            self.tasks[index] = task

    def _add_package(self, ref: str, options: BuildOptions) -> None:
        """A LinuxKit package folder: its buildah task, then the image task that waits for it."""
        folder = self.resolver.packages[ref]
        if self._first(f"component:{folder}"):
            self.tasks.append(packages.package_task(self.store, folder, self.sink, options))
        if self._first(f"image:{ref}"):
            self.refs.append(ref)
            name = packages.package_task_name(folder)
            self.tasks.append(image_task(self.store, ref, options, self.sink, name))

    def discard_staged(self) -> None:
        """After a failed build: what its output tasks staged goes, so the output folders stay as they were."""
        for output_set in self.output_sets:
            output_set.discard()

    def layer_tasks(self) -> Iterator[dict[str, Any]]:
        return layer_tasks(self.store, self.refs, self.sink)

    def record_usage(self) -> None:
        """After a successful build: write each spec's usage record (for `cache gc` and `cache ls`)."""
        now = time.time()
        for use in self.uses:
            record, blob_paths = usage_record(self.store, use, now)
            usage.write_usage(self.store.root, record, blob_paths)
            if use.kernel is not None:
                remember_kernel(self.store, use.kernel, use.state)

    def audit_up_to_date(self, up_to_date: Sequence[str]) -> None:
        """Audit mode: compute every up-to-date part and output again; raise AuditError if bytes differ."""
        # an output recheck stands for the spec's output tasks (`output:STATE/stage-S`, `output:STATE/FORMAT`)
        skipped = set(up_to_date) | {name.split("/", 1)[0] for name in up_to_date if name.startswith("output:")}
        findings = []
        for check in self.rechecks:
            if check.task in skipped:
                with self.store.tempdir("audit-") as scratch:
                    finding = audit.run_recheck(check, scratch)
                if finding is not None:
                    findings.append(finding)
        audit.raise_findings(findings)

    def _first(self, key: str) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        return True
