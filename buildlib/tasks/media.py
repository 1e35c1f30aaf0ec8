"""The output tasks of a build: one per requested format, fed by stage tasks, all keyed by content.

- `output:NAME/stage-S`: a stage (the joined initrd, the merged root tar, a BIOS or EFI disk) written
  once into the store, however many formats read it: five formats cost one merge.
- `output:NAME/FORMAT`: one format's own files, from the segments or the stages.
- `output:NAME/boot`: NAME-kernel, NAME-cmdline (and NAME-boot-initrd.img), shared by the formats
  that have them.
- `output:NAME`: publishes the set. The tasks above write into a staging folder (outputs.staging);
  this one, after every one of them succeeded, renames what they wrote into the output folder. It
  names the output files as its targets, so a task of a monorepo's dodo.py that reads them runs after
  it; reports leave it out (it runs exactly when an output task ran).

After a one-service change only that service's part reruns; every stage and format reruns from the
segments already in the store, never reading an unchanged layer again (the root stage reads the layer
indexes and streams file data from the stored layers, as the tar output always did).
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import outputs
from ..epoch import build_epoch
from ..errors import BuildError
from ..fsutil import xxh_file, xxh_value
from ..guest import machines
from ..lazy import lazy_module
from ..outputs.formats import get_stage, key_path, run_stage, stage_path, stages_for
from ..outputs.initrd import seal_path, write_entry
from ..outputs.staging import OutputSet, Piece, WrittenOutputs, record_written
from ..rootfs import parts as rootfs
from ..rootfs.tree import merged_image_tree
from ..spec.model import Kernel, Spec
from ..store.images import Store
from ..store.platforms import DEFAULT_ARCH
from .families import (
    OUTPUT_STATS,
    BuildOptions,
    ErrorSink,
    decompressed_kernel,
    kernel_copy,
    load_images,
    output_inputs,
    part_origins,
    part_tree,
    pointer_path,
    read_segments,
    record_path,
    state_dir,
)
from .identity import PUBLISH_META
from .keys import InputKeys, tool_versions

if TYPE_CHECKING:  # EFI and --secure-boot media load their modules when a format asks for them
    from ..outputs import efi, grub_modules
    from ..outputs.efi import SignedLoaders
else:
    efi, grub_modules = lazy_module("buildlib.outputs.efi"), lazy_module("buildlib.outputs.grub_modules")

BOOT_FAMILIES = (rootfs.KERNEL_PART, rootfs.INIT_PART)
MEDIA_VERSION = "8"  # bump when a stage or format writes other bytes from the same inputs (8: vmdk descriptor)


def ucode_copy(store: Store, kernel: Kernel, state: str) -> Path | None:
    """The kernel image's ucode cpio (`kernel.ucode`), written once per image digest."""
    if not kernel.ucode:
        return None
    from ..rootfs.layers import FILE

    image = load_images(store, [kernel.image])[kernel.image]
    target = state_dir(store, state) / f"ucode-{xxh_value([image.manifest_digest, kernel.ucode])}"
    if not target.is_file():
        entry = merged_image_tree(store, image, image.ref).get(kernel.ucode)
        if entry is None or entry.kind != FILE:
            raise BuildError(f"kernel image {image.ref} has no file /{kernel.ucode.strip('/')} (kernel.ucode)")
        write_entry(entry, target)
        for stale in target.parent.glob("ucode-*"):
            if stale != target:
                stale.unlink(missing_ok=True)
    return target


def signed_loaders(store: Store, ref: str, state: str) -> SignedLoaders:
    """The signed shim and GRUB of the secureboot image `ref`, written once per image digest."""
    from ..rootfs.layers import FILE

    image = load_images(store, [ref])[ref]
    folder = state_dir(store, state) / f"loaders-{xxh_value([image.manifest_digest])}"
    loaders = efi.SignedLoaders(folder / "shimx64.efi", folder / "grubx64.efi")
    if not loaders.grub.is_file():
        tree = merged_image_tree(store, image, image.ref)
        for target, path in ((loaders.shim, efi.SIGNED_SHIM), (loaders.grub, efi.SIGNED_GRUB)):
            entry = tree.get(path)
            if entry is None or entry.kind != FILE:
                raise BuildError(f"image {image.ref} has no file /{path} (--secure-boot's signed loaders)")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_entry(entry, target)
    return loaders


# Every task that calls `Media.built` reads the kernel image's layer index (kernel_copy, ucode_copy),
# even the boot task, which declares no part: without the layer family before it, it would index the
# layer itself under some orders, and the layer task would find its target already written.
READS_LAYERS = ("layer",)


class Media:
    """The output tasks of one spec build; `state` is the spec's state id (see identity)."""

    def __init__(
        self,
        store: Store,
        spec: Spec,
        parts: Sequence[rootfs.Part],
        options: BuildOptions,
        sink: ErrorSink,
        state: str,
        loaders: str | None = None,
    ) -> None:
        self.store, self.spec, self.parts, self.options, self.sink = store, spec, parts, options, sink
        self.state = state
        self.loaders = loaders  # --secure-boot: the image of the signed shim and GRUB
        self.formats = [outputs.get_format(name) for name in options.formats]
        self.prefix = options.out_dir / options.name
        self.stage_dir = state_dir(store, state) / "stages"
        self.pointers = [pointer_path(store, state, part.name) for part in parts]
        self.boot_pointers = [pointer_path(store, state, p.name) for p in parts if p.family in BOOT_FAMILIES]
        self.epoch = build_epoch()
        kernel = spec.kernel
        # the console the spec names (x86's ttyS0), renamed for the machine built for: EFI media keep
        # the command line in their loader, where `distrokit run` cannot rename it
        machine = machines.MACHINES.get(options.arch)
        self.cmdline = kernel.cmdline if kernel else ""
        self.cmdline = machines.console_for(self.cmdline, machine) if machine else self.cmdline
        self.kernel_record = [str(record_path(store, kernel.image))] if kernel else []
        self.kernel_record += [str(record_path(store, loaders))] if loaders else []
        # NAME-kernel, NAME-cmdline (and NAME-boot-initrd.img): written once for every format that has them
        self.shared = outputs.shared_files(options.formats) if kernel else ()
        # written beside the output folder, renamed into it by the publish task (a run id of its own:
        # what a killed run staged is never published by a later one)
        self.output_set = OutputSet(options.out_dir, options.name, state_dir(store, state), secrets.token_hex(6))

    def built(self, pointers: Sequence[Path] | None = None) -> outputs.BuiltParts:
        """What the formats read, resolved when a task runs: the segments of `pointers` (every part's
        by default; `()` for the kernel side alone). A task passes exactly the pointers it declares as
        file dependencies: a pointer it does not declare may not be written yet (issue 24's race)."""
        kernel = self.spec.kernel
        kernel_path = kernel_copy(self.store, kernel, self.state) if kernel else None
        if kernel_path is not None and self.options.decompress_kernel:
            kernel_path = decompressed_kernel(kernel_path)
        ucode = ucode_copy(self.store, kernel, self.state) if kernel else None
        signed = signed_loaders(self.store, self.loaders, self.state) if self.loaders else None
        pointers = self.pointers if pointers is None else list(pointers)
        boot_pointers = [pointer for pointer in pointers if pointer in self.boot_pointers]
        segment_keys = [pointer.read_text().strip() for pointer in pointers]
        names = [p.name if p else None for p in (kernel_path, ucode, signed.shim.parent if signed else None)]
        key = xxh_value([MEDIA_VERSION, segment_keys, names, self.cmdline, self.options.size, self.epoch])
        root_key = xxh_value([MEDIA_VERSION, segment_keys, self.epoch])
        store, spec, parts = self.store, self.spec, self.parts
        return outputs.BuiltParts(
            kernel_path,
            self.cmdline,
            read_segments(store, pointers),
            root=lambda: rootfs.merged_root(
                parts,
                lambda part: part_tree(store, spec, part, self.options),
                lambda part: part_origins(store, spec, part),
            ),
            ucode=ucode,
            boot_segments=read_segments(store, boot_pointers),
            size=self.options.size,
            epoch=self.epoch,
            key=key,
            root_key=root_key,
            stage_dir=self.stage_dir,
            arch=self.options.arch,
            efi_modules=lambda loader: grub_modules.module_dir(store, loader),
            kernel_image=kernel.image if kernel else "",
            signed_loaders=signed,
        )

    def keys(self, *, disk: bool = False, cmdline: bool = True, **more: Any) -> InputKeys:
        """Besides the pointers' contents (file dependencies, which have no order): the order the parts
        are joined in and the kernel section (output_inputs), the epoch and this writer's version."""
        values: dict[str, Any] = {**output_inputs(self.spec, self.parts, self.options), "media": MEDIA_VERSION}
        values.update(epoch=self.epoch, **more)
        if self.options.arch != DEFAULT_ARCH:  # amd64's keys stay as they were before other architectures
            values["arch"] = self.options.arch
        values.pop("formats", None)  # each task is one format's, or a stage several formats share
        if not cmdline:
            values.pop("cmdline", None)
        if disk:
            values["size"] = self.options.size
        return InputKeys({**values, **tool_versions(), **self.options.habits()})

    def needed_stages(self) -> list[str]:
        needed = stages_for(tuple(stage for fmt in self.formats for stage in fmt.stages))
        if outputs.BOOT_INITRD_SUFFIX in self.shared:
            needed = stages_for((*needed, "boot-initrd"))
        return needed

    def tasks(self) -> list[dict[str, Any]]:
        tasks = [self.stage_task(name) for name in self.needed_stages()]
        if self.shared:
            tasks.append(self.shared_task(self.shared))
        tasks.extend(self.format_task(fmt) for fmt in self.formats)
        tasks.append(self.publish_task([f"output:{task['name']}" for task in tasks]))
        return tasks

    def _task(self, name: str, doc: str, action: Callable[[], None], **fields: Any) -> dict[str, Any]:
        return {
            "basename": "output",
            "name": f"{self.state}/{name}" if name else self.state,
            "doc": doc,
            "actions": [self.sink.guard(action)],
            "verbosity": 0,
            **fields,
        }

    def root_records(self) -> list[str]:
        """The records of every part's images: what a stage merging the root reads them by."""
        refs = dict.fromkeys(ref for part in self.parts for ref in part.images)
        return [str(record_path(self.store, ref)) for ref in refs]

    def stage_pointers(self, name: str) -> list[Path]:
        """The pointers a stage reads: the boot initrd mounts the root, so it holds the boot parts alone."""
        return self.boot_pointers if name == "boot-initrd" else self.pointers

    def stage_task(self, name: str) -> dict[str, Any]:
        stage = get_stage(name)
        pointers = self.stage_pointers(name)
        stage_deps = [str(key_path(self.stage_dir, need)) for need in stage.needs]
        records = self.root_records() if stage.uses_root else []

        def write() -> None:
            built = self.built(pointers)
            run_stage(name, built, xxh_value([name, built.key]))

        return self._task(
            f"stage-{name}",
            f"write the {name} stage of {self.options.name}",
            write,
            file_dep=[str(p) for p in pointers] + self.kernel_record + list(dict.fromkeys(records + stage_deps)),
            targets=[str(key_path(self.stage_dir, name)), str(stage_path(self.stage_dir, name))],
            uptodate=[self.keys(disk=stage.disk, cmdline=stage.disk, stage=name)],
            task_dep=list(READS_LAYERS),
        )

    def shared_task(self, suffixes: tuple[str, ...]) -> dict[str, Any]:
        boot_initrd = outputs.BOOT_INITRD_SUFFIX in suffixes
        deps = self.kernel_record + ([str(key_path(self.stage_dir, "boot-initrd"))] if boot_initrd else [])
        finals = [self.final(suffix) for suffix in suffixes]

        def write() -> None:
            outputs.write_shared_files(self.built(()), self.output_set.prefix(), suffixes)
            self.record("boot", finals, {})

        return self._task(
            "boot",
            f"write {', '.join(suffixes)} for {self.options.name}",
            write,
            file_dep=deps,
            uptodate=[self.keys(files=list(suffixes)), self.as_written("boot", finals)],
            task_dep=list(READS_LAYERS),
        )

    def format_task(self, fmt: outputs.Format) -> dict[str, Any]:
        # the pointers too when it reads stages: its ids derive from every segment's key (built().key)
        deps = [str(p) for p in self.pointers] + self.kernel_record
        deps += [str(key_path(self.stage_dir, name)) for name in fmt.stages]
        finals = fmt.own_targets(self.prefix)

        def write() -> None:
            built = self.built()
            fmt.write(built, self.output_set.prefix())
            self.record(fmt.name, finals, _known_pieces(fmt, built, self.prefix))

        return self._task(
            fmt.name,
            f"write {fmt.name} for {self.options.name}",
            write,
            file_dep=deps,
            uptodate=[
                self.keys(disk=fmt.disk, cmdline=fmt.uses_cmdline, format=fmt.name),
                self.as_written(fmt.name, finals),
            ],
            task_dep=list(READS_LAYERS),
        )

    def publish_task(self, output_tasks: list[str]) -> dict[str, Any]:
        """`output:NAME`: after every output task succeeded, what they staged renamed into the output folder."""
        finals = dict.fromkeys(path for fmt in self.formats for path in fmt.targets(self.prefix))
        return self._task(
            "",
            f"put the new files of {self.options.name} in place, all at once",
            self.output_set.publish,
            task_dep=output_tasks,
            targets=[str(path) for path in finals],
            uptodate=[lambda: not self.output_set.pending()],
            meta={PUBLISH_META: True},
        )

    def final(self, suffix: str) -> Path:
        return self.prefix.with_name(self.prefix.name + suffix)

    def record(self, label: str, finals: Sequence[Path], pieces: dict[Path, list[Piece]]) -> None:
        """What the task wrote (see outputs.staging), keyed by the files' places in the output folder."""
        staged = {final: self.output_set.staging / final.name for final in finals}
        record_written(self.record_path(label), staged, pieces)

    def record_path(self, label: str) -> Path:
        return state_dir(self.store, self.state) / f"{label}-{OUTPUT_STATS}"

    def as_written(self, label: str, finals: Sequence[Path]) -> WrittenOutputs:
        return WrittenOutputs(self.record_path(label), tuple(finals))

    def write_everything(self, prefix: Path, stage_dir: Path) -> None:
        """Every requested format's files at `prefix`, the stages they read under `stage_dir`: the
        whole output side again, in one go and somewhere else (the audit's clean computation)."""
        for name in self.needed_stages():
            staged = dataclasses.replace(self.built(self.stage_pointers(name)), stage_dir=stage_dir)
            run_stage(name, staged, xxh_value([name, staged.key]))
        built = dataclasses.replace(self.built(), stage_dir=stage_dir)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        if self.shared:  # from the kernel side alone, as the shared task writes them
            kernel_side = dataclasses.replace(self.built(()), stage_dir=stage_dir)
            outputs.write_shared_files(kernel_side, prefix, self.shared)
        for fmt in self.formats:
            fmt.write(built, prefix)


def _known_pieces(fmt: outputs.Format, built: outputs.BuiltParts, prefix: Path) -> dict[Path, list[Piece]]:
    """The initrd's content key without reading it again: the join checked every segment against its key
    as it copied it, so the initrd is the ucode's bytes followed by the segments' keyed bytes."""
    if fmt.name != outputs.DEFAULT_FORMAT:
        return {}
    heads: list[Piece] = [(built.ucode.stat().st_size, xxh_file(built.ucode))] if built.ucode else []
    segments = [(path.stat().st_size, seal_path(path).read_text().strip()) for path in built.segments]
    (initrd,) = fmt.own_targets(prefix)
    return {initrd: heads + segments}
