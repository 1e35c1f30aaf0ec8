"""The task families of a build, as doit task dicts.

`component` builds an image from components/, `image` makes sure an image is in the store and
records its digests, `layer` indexes one layer (once per digest, shared by every spec), `part`
writes one compressed segment of the root, `output` writes the boot media. Every action writes
atomically and every key is content, so a killed build leaves nothing half done and a rerun
does only what is missing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import arches, outputs
from ..debian import archive, recipes
from ..debian import builds as component_builds
from ..errors import BadInput, DistrokitError, LockMismatch
from ..fsutil import read_json, write_bytes_atomic, write_json_atomic, xxh_file, xxh_value
from ..interrupts import ending
from ..lazy import lazy_module
from ..outputs import kernelimage, preflight
from ..outputs.compress import Compression
from ..outputs.initrd import (
    DEFAULT_COMPRESSION,
    KERNEL_POINTER,
    kernel_path,
    seal_file,
    segment_path,
    segment_problem,
    write_entry,
    write_segment,
)
from ..rootfs import layers
from ..rootfs import parts as rootfs
from ..rootfs.sbom import spec_name as sbom_spec_name
from ..spec.model import Kernel, Spec
from ..spec.refs import ImageRef
from ..store.images import Image, Layer, Store
from ..store.transport import Listener, Network, ignore
from . import audit
from .keys import InputKeys, epoch_key, tool_versions
from .report import HandledFailure

if TYPE_CHECKING:  # what only a pull, a --lock, --input-tar, --secure-boot or shared-cache build uses loads then
    from ..outputs import efi
    from ..release import lock as lockfile
    from ..release import pinning
    from ..release.lock import Lock
    from ..rootfs import inputtar
    from ..store import pulls
    from .shared import SharedCache
else:
    efi, pinning = lazy_module("buildlib.outputs.efi"), lazy_module("buildlib.release.pinning")
    inputtar, lockfile = lazy_module("buildlib.rootfs.inputtar"), lazy_module("buildlib.release.lock")
    pulls = lazy_module("buildlib.store.pulls")  # fetching an image, or checking a pinned one


@dataclass(frozen=True)
class BuildOptions:
    """What a build is asked for besides its spec: store, output folder and name, formats, flags."""

    cache: Path
    out_dir: Path
    name: str
    formats: tuple[str, ...] = ("kernel+initrd",)
    size: int = outputs.DEFAULT_DISK_SIZE  # --size of disk formats, in bytes
    compression: Compression = DEFAULT_COMPRESSION
    pull: bool = False
    arch: str = "amd64"
    network: Network | None = None  # mirrors, insecure registries, retries; None: from the environment
    audit: bool = False  # recompute every up-to-date part and output and fail if its bytes differ
    lock: Lock | None = field(default=None, compare=False)  # the spec's pins, when it has a lock file
    lock_file: str = ""  # where `lock` came from, for messages
    locked: bool = False  # fail when the spec and its lock disagree, instead of warning
    shared: SharedCache | None = field(default=None, compare=False)  # --cache-from / --cache-to
    sbom: bool = True  # False: `--no-sbom`, the SBOM left out of the image
    decompress_kernel: bool = False
    # a missing `files` source may be a target of another task (a monorepo's dodo.py): doit orders them
    sources_from_tasks: bool = False
    # `--input-tar FILE`: a previous build's tar, whose entries stand in for the images it holds
    input_tar: Path | None = None
    secure_boot: bool = False  # EFI formats boot through Debian's signed shim and GRUB (outputs.efi)

    def habits(self) -> dict[str, bool]:
        """The flags that change bytes, as input keys only when set: stores stay warm for the rest."""
        flags = (("no-sbom", not self.sbom), ("decompress-kernel", self.decompress_kernel))
        return {key: True for key, on in (*flags, ("secure-boot", self.secure_boot)) if on}

    # who hears the bytes of image pulls and .deb downloads (the CLI's live view); never part of a key
    transfer_listener: Listener | None = field(default=None, compare=False, repr=False)


@dataclass(eq=False)
class ErrorSink:
    """Collects the DistrokitErrors task actions raise, so the caller can re-raise the first."""

    errors: list[DistrokitError] = field(default_factory=list)

    def guard(self, action: Callable[[], object]) -> Callable[[], HandledFailure | None]:
        def run() -> HandledFailure | None:
            if ending():  # Ctrl-C or SIGTERM: a task a worker thread takes now would outlive the command
                return HandledFailure("interrupted")
            try:
                action()
            except DistrokitError as exc:
                self.errors.append(exc)
                return HandledFailure(str(exc))
            return None

        return run


@dataclass(frozen=True)
class StoreCheck:
    """An up-to-date check of the store (doit calls it), and what it found wrong in words, for `explain`."""

    check: Callable[[], bool]
    unmet: Callable[[], list[str]]

    def __call__(self) -> bool:
        return self.check()


# paths --------------------------------------------------------------------------------------
def record_path(store: Store, ref: str) -> Path:
    """The record of what `ref` is for the store's architecture (one per platform the name holds)."""
    return store.root / "images" / f"{xxh_value(ref)}{arches.arch_suffix(store.arch)}.json"


def state_dir(store: Store, state: str) -> Path:
    """The folder of one spec build's state (see `identity.spec_state_id`): pointers, the kernel copy."""
    return store.root / "build" / state


def pointer_path(store: Store, state: str, part: str) -> Path:
    """A small file naming the segment one part of one spec build currently is."""
    return state_dir(store, state) / f"{part}.segment"


def read_segments(store: Store, pointers: Sequence[Path]) -> tuple[Path, ...]:
    """The segments the pointers name; each is checked against its key as an initrd is joined from it."""
    return tuple(segment_path(store.root, pointer.read_text().strip()) for pointer in pointers)


def segment_sealed(store: Store, pointer: str | Path) -> bool:
    """the segment this part wrote is in the store with its key file

    (A store written before segments carried keys rewrites its segments once instead of refusing them;
    a cheap check: no segment is read. It runs for every part of every spec of a monorepo, so it reads
    bytes and names files as text: a text-mode file and Path objects cost more than the check.)"""
    try:
        with open(pointer, "rb") as handle:
            key = handle.read().decode().strip()
    except FileNotFoundError:
        return False
    return os.path.isfile(seal_file(str(store.root), key))


def load_images(store: Store, refs: Sequence[str]) -> dict[str, Image]:
    loaded = {}
    for ref in refs:
        record = read_json(record_path(store, ref))
        from_tar = record.get("input_tar")
        if from_tar is not None:  # taken from --input-tar: no blob in the store, no layer
            loaded[ref] = Image(ref, record["manifest"], "", from_tar["config"], ())
        else:
            loaded[ref] = store.image_by_digest(ref, record["manifest"])
    return loaded


def tar_sources(store: Store, refs: Sequence[str]) -> list[dict[str, Any]]:
    """What the records of `refs` taken from --input-tar say of the tar (none for pulled images)."""
    records = (read_json(record_path(store, ref)) for ref in refs)
    return [record["input_tar"] for record in records if "input_tar" in record]


_INPUT_TARS: dict[tuple[str, int, int], inputtar.InputTar] = {}


def read_input_tar(path: Path) -> inputtar.InputTar:
    """The input tar read once per build (every part taken from it reads it)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _INPUT_TARS:
        _INPUT_TARS[key] = inputtar.read_input_tar(path)
    return _INPUT_TARS[key]


# components ---------------------------------------------------------------------------------
def component_folder(ref: str, component_root: Path, resolver: recipes.PkgResolver) -> Path | None:
    """The component folder that builds `ref`: from an `@pkg:` template, or components/NAME for distrokit/NAME."""
    return recipes.folder_for(ref, component_root, resolver)


def pin_components(store: Store, folders: Sequence[Path], options: BuildOptions) -> None:
    """The components' pins, those the store lacks resolved side by side before their tasks are made;
    not with a lock or a shared cache, whose pins come first (see component_task)."""
    if options.lock is None and options.shared is None:
        archive.pin_all(store.root, [recipes.load_recipe(folder, options.arch) for folder in folders])


def component_task(store: Store, folder: Path, sink: ErrorSink, options: BuildOptions | None = None) -> dict[str, Any]:
    arch = options.arch if options else arches.DEFAULT_ARCH
    recipe = recipes.load_recipe(folder, arch)
    lock = options.lock if options else None
    shared = options.shared if options else None
    listener = (options.transfer_listener if options else None) or ignore
    # the lock pins amd64's .deb files under the recipe's name, another architecture's under NAME-ARCH
    locked = lock.packages(recipe.build_name, recipe.key) if lock is not None else None
    if shared is not None and locked is None:
        shared.fetch_pin(store, recipe)  # the .debs the machine that built it pinned, and no apt query
    packages = locked if locked is not None else archive.pinned_packages(store.root, recipe)
    task = f"component:{recipe.build_name}"

    def build() -> None:
        key = xxh_value({**recipes.recipe_input_key(recipe, packages), **tool_versions()})
        if shared is not None and shared.fetch_component(store, recipe.ref, key, arch, task):
            component_builds.record(store, recipe, packages)  # up to date for `pkg build` and the next build
            remember_locked()
            return
        component_builds.build(store, recipe, packages, listener)
        remember_locked()
        if shared is not None:
            shared.push_component(store, recipe.ref, key, task)
            shared.push_pin(store, recipe, task)

    def remember_locked() -> None:
        """The store's pins become a cache of the lock, once the image is built from them: a pin the
        archive cannot serve never lands in the store."""
        if locked is not None:
            archive.remember_pins(store.root, recipe, locked)

    def built() -> bool:
        """the store holds the image built from this recipe and these .deb files (by `build` or `pkg build`)"""
        return component_builds.up_to_date(store, recipe, packages) and not against_lock()

    def against_lock() -> list[str]:
        """With a lock, the store's image must record exactly the pinned .debs: its build record names
        only their files and hashes, and an image imported or built elsewhere may hold others."""
        if locked is None:
            return []
        return component_builds.stored_differences(store, recipe, locked) or []

    # Up to date by the store's own record, not doit's: `pkg build` builds outside doit.
    return {
        "basename": "component",
        "name": recipe.build_name,
        "doc": f"build the {recipe.name} image from Debian packages",
        "actions": [sink.guard(build)],
        "uptodate": [StoreCheck(built, against_lock)],
        "verbosity": 0,
    }


# images and layers --------------------------------------------------------------------------
def image_task(store: Store, ref: str, options: BuildOptions, sink: ErrorSink, component: str | None) -> dict[str, Any]:
    target = record_path(store, ref)
    parsed = ImageRef.parse(ref)
    force = options.pull and component is None
    pin = pinned_manifest(options, ref) if component is None else None

    def fetch() -> None:
        listener = options.transfer_listener or ignore
        if pin is not None:
            image = pulls.ensure_pinned(
                store, parsed, pin, network=options.network, arch=options.arch, listener=listener
            )
        else:
            image = pulls.ensure_image(
                store, parsed, force_pull=force, network=options.network, arch=options.arch, listener=listener
            )
        write_json_atomic(target, image.record())

    def in_store() -> bool:
        """the image is in the store, recorded, and no --pull was asked for"""
        if force or not target.is_file() or against_lock():
            return False
        record = read_json(target)  # a record taken from --input-tar stands for no image of the store
        return "input_tar" not in record and record["manifest"] == store.lookup(parsed)

    def against_lock() -> list[str]:
        """With a pin, the record must name the pinned manifest: the name in the store may have moved."""
        recorded = read_json(target)["manifest"] if pin is not None and target.is_file() else None
        if recorded is None or recorded == pulls.pinned_in_store(store, pin or ""):
            return []
        return [f"image {parsed.familiar()}: the store records {recorded}, the lock pins {pin}"]

    keys = InputKeys({"arch": options.arch, **({"pin": pin} if pin else {})})

    return {
        "basename": "image",
        "name": ref,
        "doc": f"make sure {parsed.familiar()} is in the store",
        "actions": [sink.guard(fetch)],
        "targets": [str(target)],
        "uptodate": [StoreCheck(in_store, against_lock), keys],
        "task_dep": [f"component:{component}"] if component else [],
        "verbosity": 0,
    }


def tar_image_task(store: Store, ref: str, record: dict[str, Any], sink: ErrorSink) -> dict[str, Any]:
    """An image taken from --input-tar: its record, written from what the tar says (nothing pulled)."""
    target = record_path(store, ref)

    def write() -> None:
        write_json_atomic(target, record)

    return {
        "basename": "image",
        "name": ref,
        "doc": f"take {ImageRef.parse(ref).familiar()} from the input tar",
        "actions": [sink.guard(write)],
        "targets": [str(target)],
        "uptodate": [lambda: target.is_file() and read_json(target) == record],
        "verbosity": 0,
    }


def tar_records(store: Store, spec: Spec, options: BuildOptions) -> dict[str, dict[str, Any]]:
    """The records of the images --input-tar stands in for (none without the flag): an image the store
    already holds is read from the store, and a digest the lock pins must be the tar's."""
    if options.input_tar is None:
        return {}
    tar = read_input_tar(options.input_tar)

    def known_digest(ref: str) -> str | None:
        return pinned_manifest(options, ref)

    records = {}
    for ref in spec.images():
        if store.lookup(ImageRef.parse(ref)) is not None:
            continue
        record = inputtar.tar_record(spec, tar, ref, options.arch, known_digest)
        if record is not None:
            records[ref] = record
    return records


def pinned_manifest(options: BuildOptions, ref: str) -> str | None:
    """The manifest digest the build's lock pins for a registry image on the build's platform, if any."""
    return options.lock.manifest(ref, lockfile.platform_of(options.arch)) if options.lock is not None else None


def layer_tasks(store: Store, refs: Sequence[str], sink: ErrorSink) -> Iterator[dict[str, Any]]:
    """One task per distinct layer of the recorded images (created once the image tasks ran)."""
    seen: set[str] = set()
    for ref in refs:
        record = record_path(store, ref)
        if not record.is_file():
            continue
        for digest, media_type, diff_id in read_json(record)["layers"]:
            if digest in seen:
                continue
            seen.add(digest)
            layer = Layer(digest, media_type, 0, diff_id)
            index = layers.index_path(store, layer)
            yield {
                "name": digest,
                "doc": f"index layer {digest}",
                "actions": [sink.guard(partial(layers.ensure_index, store, layer, ref))],
                "targets": [str(index)],
                "uptodate": [index.is_file],
                "verbosity": 0,
            }


# parts and outputs --------------------------------------------------------------------------
def part_tree(store: Store, spec: Spec, part: rootfs.Part, options: BuildOptions) -> rootfs.Tree:
    if part.family != rootfs.FILES_PART:  # the files part reads every image, and only their records
        for source in tar_sources(store, part.images):
            tar = read_input_tar(Path(source["path"]))
            return inputtar.part_tree(tar, spec, part, source["places"][inputtar.part_place(spec, part)[1]])
    images = load_images(store, list(part.images))
    return rootfs.part_tree(store, spec, part, images, sbom=options.sbom)


def part_origins(store: Store, spec: Spec, part: rootfs.Part) -> rootfs.PartOrigins:
    """Where a part's entries came from (the tar's LINUXKIT.source and LINUXKIT.location)."""
    return rootfs.origins(store, spec, part, load_images(store, list(part.images)))


def part_inputs(spec: Spec, part: rootfs.Part, options: BuildOptions) -> dict[str, Any]:
    """What a part's segment depends on that is known before any image is recorded. The images are
    named in order (the files part lists them in `installed` and the SBOM in that order); their
    digests come from their records, the sources' content from the files (both file dependencies)."""
    return {
        "spec": rootfs.part_fragment(spec, part),
        "images": list(part.images),
        "compression": options.compression.value,
        "compressor": options.compression.version(),  # another library version may write other bytes
        **tool_versions(),
        **epoch_key(),  # generated entries carry SOURCE_DATE_EPOCH when it is set
        **(options.habits() if part.family == rootfs.FILES_PART else {}),  # --no-sbom
        # the SBOM names the spec (its first file's base name), never --name: renaming the file changes bytes
        **({"sbom-name": sbom_spec_name(spec)} if part.family == rootfs.FILES_PART and options.sbom else {}),
    }


def segment_key(store: Store, part: rootfs.Part, inputs: dict[str, Any], sources: Sequence[str]) -> str:
    """The content key of a part's segment: its inputs, its images' digests, its sources' content."""
    loaded = load_images(store, list(part.images))
    digests = [loaded[ref].manifest_digest for ref in part.images]
    key: list[Any] = [inputs, digests, [xxh_file(Path(source)) for source in sources]]
    from_tar = (
        [source["places"] for source in tar_sources(store, part.images)] if part.family != rootfs.FILES_PART else []
    )
    return xxh_value(key + [from_tar] if from_tar else key)  # a pulled part keeps the key it always had


def write_part(store: Store, spec: Spec, part: rootfs.Part, options: BuildOptions, target: Path) -> None:
    """The part's segment, computed from the spec and the images' layers, written to `target`."""
    write_segment(part_tree(store, spec, part, options).entries(), target, options.compression)


def part_probes(
    store: Store, spec: Spec, part: rootfs.Part, inputs: dict[str, Any], sources: Sequence[str]
) -> dict[str, str]:
    """What the audit compares to name an input a part's key missed (see `audit`)."""
    loaded = load_images(store, list(part.images))
    probes = {**audit.key_probes(inputs), **audit.spec_probes(spec)}
    probes.update({f"image {ref}": image.manifest_digest for ref, image in loaded.items()})
    probes.update({f"source {path}": audit.source_probe(path) for path in sources})
    return probes


def part_task(
    store: Store, spec: Spec, part: rootfs.Part, options: BuildOptions, sink: ErrorSink, state: str
) -> dict[str, Any]:
    target = pointer_path(store, state, part.name)
    sources = rootfs.part_sources(spec, part)
    inputs = part_inputs(spec, part, options)
    shared, task = options.shared, f"part:{options.name}/{part.name}"
    input_tar = [str(options.input_tar.resolve())] if options.input_tar and part.family != rootfs.FILES_PART else []

    def write() -> None:
        # the spec fragment and the sources as they are now: another task may have written a source since
        now = {**inputs, "spec": rootfs.part_fragment(spec, part)}
        sources_now = rootfs.part_sources(spec, part)
        key = segment_key(store, part, now, sources_now)
        segment = segment_path(store.root, key)
        # segments are shared by content: another spec or name, or the shared cache, may have it
        if segment_problem(segment) and not (shared and shared.fetch_segment(store, key, segment, task)):
            write_part(store, spec, part, options, segment)
            if shared is not None:
                shared.push_segment(store, key, segment, task)
        probes = part_probes(store, spec, part, now, sources_now)
        audit.write_probes(audit.probes_path(state_dir(store, state), part.name), probes)
        write_bytes_atomic(target, key.encode())

    return {
        "basename": "part",
        "name": f"{state}/{part.name}",
        "doc": f"write the {part.name} segment of {options.name}",
        "actions": [sink.guard(write)],
        "file_dep": [str(record_path(store, ref)) for ref in part.images] + sources + input_tar,
        "targets": [str(target)],
        # no task_dep on the layer family: a part indexes what its images' layers still lack itself
        # (layers.ensure_index, once per layer), so it starts once its own images are in the store
        "uptodate": [InputKeys(inputs), partial(segment_sealed, store, target)],
        "verbosity": 0,
    }


def kernel_key(store: Store, kernel: Kernel) -> tuple[Image, str]:
    """The kernel's image, and the key its binary is stored under in `kernels/`."""
    image = load_images(store, [kernel.image])[kernel.image]
    return image, xxh_value([image.manifest_digest, kernel.binary])


def kernel_copy(store: Store, kernel: Kernel, state: str) -> Path:
    """The kernel binary out of its image, stored once per kernel image and binary in `kernels/` (every
    spec with that kernel shares it). An output that reruns for a changed service does not extract and
    sync it again. The spec's `kernel.ref`, which keeps it from `cache gc`, is written once the build
    succeeded (`remember_kernel`): no task reads a file every task writes."""
    image, key = kernel_key(store, kernel)
    target = kernel_path(store.root, key)
    if not target.is_file():
        binary, _ = rootfs.kernel_files(store, kernel, image)
        write_entry(binary, target)
    for stale in state_dir(store, state).glob("kernel-*"):  # the per-spec copies earlier versions wrote
        stale.unlink(missing_ok=True)
    return target


def remember_kernel(store: Store, kernel: Kernel, state: str) -> None:
    """`build/<state>/kernel.ref`: which copy in `kernels/` the spec's last build used (gc keeps it)."""
    pointer = state_dir(store, state) / KERNEL_POINTER
    key = kernel_key(store, kernel)[1]
    if not pointer.is_file() or pointer.read_text() != key:
        write_bytes_atomic(pointer, key.encode())


def output_inputs(spec: Spec, parts: Sequence[rootfs.Part], options: BuildOptions) -> dict[str, Any]:
    """What the outputs depend on besides the parts' pointers and the kernel's record: the formats,
    the parts in the order their segments are joined (a set of file dependencies has no order), the
    kernel binary's path and command line, the generated timestamps' epoch."""
    kernel = spec.kernel
    return {
        "formats": list(options.formats),
        "parts": [part.name for part in parts],
        "kernel": {k: v for k, v in kernel.to_dict().items() if k != "cmdline"} if kernel else None,  # binary, ucode
        "cmdline": kernel.cmdline if kernel else "",
        **epoch_key(),
        **tool_versions(),
        **options.habits(),  # --decompress-kernel (and --no-sbom, through the files part)
    }


def output_probes(
    store: Store, spec: Spec, parts: Sequence[rootfs.Part], inputs: dict[str, Any], state: str
) -> dict[str, str]:
    probes = {**audit.key_probes(inputs), **audit.spec_probes(spec)}
    for part in parts:
        pointer = pointer_path(store, state, part.name)
        probes[f"part {part.name}"] = pointer.read_text().strip() if pointer.is_file() else ""
    if spec.kernel is not None:
        probes[f"image {spec.kernel.image}"] = load_images(store, [spec.kernel.image])[
            spec.kernel.image
        ].manifest_digest
    return probes


OUTPUT_PROBES = "output"
OUTPUT_STATS = "outputs.json"


def decompressed_kernel(binary: Path) -> Path:
    """The kernel decompressed beside its copy, once per kernel."""
    target = binary.with_name(binary.name + "-decompressed")
    if not target.is_file():
        kernelimage.write_decompressed(binary, target)
    return target


# audit ------------------------------------------------------------------------------------------
def part_recheck(store: Store, spec: Spec, part: rootfs.Part, options: BuildOptions, state: str) -> audit.Recheck:
    pointer = pointer_path(store, state, part.name)
    sources = rootfs.part_sources(spec, part)
    inputs = part_inputs(spec, part, options)

    def current() -> dict[str, Path]:
        return {"segment": segment_path(store.root, pointer.read_text().strip())}

    def recompute(scratch: Path) -> dict[str, Path]:
        write_part(store, spec, part, options, scratch / "segment")
        return {"segment": scratch / "segment"}

    return audit.Recheck(
        f"part:{state}/{part.name}",
        current,
        recompute,
        lambda: part_probes(store, spec, part, inputs, sources),
        audit.probes_path(state_dir(store, state), part.name),
    )


def check_lock(spec: Spec, options: BuildOptions, component_root: Path, resolver: recipes.PkgResolver) -> list[str]:
    """How the spec and its lock disagree, as warnings (what is not pinned is resolved as without a lock);
    with --locked, a LockMismatch naming every entry instead."""
    if options.lock is None and not options.locked:
        return []
    platform = lockfile.platform_of(options.arch)
    if options.lock is None:
        inputs = pinning.spec_inputs(spec, component_root, resolver, secure_boot=options.secure_boot)
        command = pinning.lock_command(spec.files_read, "", lockfile.Lock(), inputs, platform)
        raise LockMismatch(f"--locked: {options.name} has no lock file: write one with `{command}`")
    inputs = pinning.spec_inputs(spec, component_root, resolver, secure_boot=options.secure_boot)
    where = options.lock_file or "the lock"
    found = lockfile.disagreements(options.lock, inputs.wanted((platform,)), where)
    if not found:
        return []
    command = pinning.lock_command(spec.files_read, options.lock_file, options.lock, inputs, platform)
    if options.locked:
        raise LockMismatch(f"--locked: the spec and {where} disagree: " + "; ".join(found) + f": run `{command}`")
    return [f"{line} (built unpinned: run `{command}` to pin it)" for line in found]


def check_buildable(spec: Spec, options: BuildOptions) -> None:
    """preflight's checks; with `sources_from_tasks` a missing source is none (doit says if no task writes it)."""
    problem = efi.secure_boot_problem(options.formats, options.arch) if options.secure_boot else None
    if problem is not None:
        raise BadInput(problem)
    if not options.sources_from_tasks:
        preflight.check_buildable(spec, options.formats, options.arch)
        return
    missing = set(rootfs.file_sources_missing(spec))
    found = [problem for problem in preflight.problems(spec, options.formats, options.arch) if problem not in missing]
    if found:
        raise preflight.NotBuildable(found)
