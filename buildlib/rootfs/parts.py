"""The parts of a root file system: what each part is, what it reads, and its tree.

Each part (kernel modules, init, each volume, each container image, each container bundle, files)
becomes its own segment of the output, so a change to one part rebuilds only that part. Trees and
their whiteout semantics live in `tree`; where containers and volumes go, in `placement`.
"""

from __future__ import annotations

import errno
import json
import posixpath
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..debian.recipes import recorded_architectures, recorded_packages
from ..epoch import build_epoch
from ..errors import BadInput, BuildError
from ..spec.model import FileEntry, Kernel, Spec
from ..spec.refs import ImageRef
from ..store.images import Image, Store
from . import bundles, placement
from .bundles import numeric_id
from .layers import DIR, FILE, SYMLINK, Entry, ensure_indexes, load_index, nested_tar_entries
from .sbom import LINUXKIT_SBOM_PATH, SBOM_PATH, render_linuxkit, spec_name
from .sbom import render as render_sbom
from .tree import DEFAULT_DIR_MODE, Tree, dir_entry, file_entry, merged_image_tree

if TYPE_CHECKING:
    from .origins import PartOrigins

__all__ = ["DEFAULT_DIR_MODE", "Tree", "dir_entry", "file_entry", "merged_image_tree"]

# placement ----------------------------------------------------------------------------------
# The parts of a root file system, in the order their segments are joined: a later part's file
# replaces an earlier one's at the same path, as the kernel unpacks concatenated archives.
# LinuxKit's order: kernel, init, volumes, onboot, onshutdown, services, files.
KERNEL_PART = "kernel"
INIT_PART = "init"
FILES_PART = "files"
VOLUME_KIND = "volume"
IMAGE_KIND = "image"
BUNDLE_KIND = "bundle"
INSTALLED_PATH = "etc/distrokit/installed"


@dataclass(frozen=True)
class Part:
    """One segment of the root: its name (a file name), the images it reads, its kind (the name, for the
    kernel, init and files parts) and what it is of (a volume name or a container's section/index)."""

    name: str
    images: tuple[str, ...]
    kind: str = ""
    subject: str = ""

    @property
    def family(self) -> str:
        return self.kind or self.name


def plan_parts(spec: Spec) -> tuple[Part, ...]:
    parts = []
    if spec.kernel is not None and spec.kernel.tar:
        parts.append(Part(KERNEL_PART, (spec.kernel.image,)))
    if spec.init:
        parts.append(Part(INIT_PART, tuple(spec.init)))
    for volume in spec.volumes:
        images = (volume.image,) if volume.image is not None else ()
        parts.append(Part(f"volume-{volume.name}", images, VOLUME_KIND, volume.name))
    for slot in placement.slots(spec):
        name = slot.prefix.split("/", 1)[1].replace("/", "-")
        images = (slot.container.image,)
        if slot.owns_image:
            parts.append(Part(f"image-{name}", images, IMAGE_KIND, slot.key()))
        parts.append(Part(name, images, BUNDLE_KIND, slot.key()))
    parts.append(Part(FILES_PART, spec.images()))
    return tuple(parts)


def reads_layers(part: Part) -> bool:
    """Whether a part reads its images' layers (the files part and bundles read only their records)."""
    return part.family not in (FILES_PART, BUNDLE_KIND)


def part_fragment(spec: Spec, part: Part) -> object:
    """The part of the spec a part reads: its content key besides the images' records."""
    if part.family == KERNEL_PART:
        assert spec.kernel is not None
        return [spec.kernel.image, spec.kernel.tar]
    if part.family == FILES_PART:
        sources = [_source_path(item).exists() for item in spec.files if item.source is not None]
        named = any(isinstance(item.uid, str) or isinstance(item.gid, str) for item in spec.files)
        ids = list(bundles.context_of(spec).ids) if named else []
        metadata = spec.to_dict() if _uses_metadata(spec) else None
        return [[item.to_dict() for item in spec.files], sources, ids, metadata, list(spec.init)]
    if part.family == VOLUME_KIND:
        return ["volume", placement.find_volume(spec, part.subject).to_dict(), "touched"]
    if part.family == IMAGE_KIND:
        return placement.image_fragment(placement.find_slot(spec, part.subject))
    if part.family == BUNDLE_KIND:
        return placement.bundle_fragment(spec, placement.find_slot(spec, part.subject))
    return list(part.images)


def part_sources(spec: Spec, part: Part) -> list[str]:
    """Host files a part reads (`files` entries with a source), for the task's file dependencies."""
    if part.family != FILES_PART:
        return []
    sources = (_source_path(item) for item in spec.files if item.source is not None)
    return [str(path) for path in sources if path.is_file()]


def missing_source(item: FileEntry) -> str:
    """What to say about a `files` entry whose source is not there."""
    return (
        f"{item.location}: files: source {item.source} is not a readable file ({_not_a_file(_source_path(item))}) "
        "(from the folder the build runs in): create it, fix the path, or add `optional: true`"
    )


def file_sources_missing(spec: Spec) -> list[str]:
    """The problems of `files` entries whose source a build could not read."""
    return [
        missing_source(item)
        for item in spec.files
        if item.source is not None and not item.optional and not _source_path(item).is_file()
    ]


def file_owners_unknown(spec: Spec) -> list[str]:
    """The problems of `files` entries owned by a container name the spec does not have."""
    ids = dict(bundles.context_of(spec).ids)
    problems = []
    for item in spec.files:
        for value in (item.uid, item.gid):
            try:
                _file_id(item, value, ids)
            except BadInput as error:
                problems.append(str(error))
    return problems


def _uses_metadata(spec: Spec) -> bool:
    return any(item.metadata for item in spec.files)


def _source_path(item: FileEntry) -> Path:
    # As in LinuxKit, a relative source is read from the folder the build runs in; `~/` was expanded
    # when the spec was read.
    return Path(item.source or "")


def kernel_files(store: Store, kernel: Kernel, image: Image) -> tuple[Entry, Entry | None]:
    """The kernel binary and, when the spec asks for it, the modules tar, from a kernel image."""
    tree = merged_image_tree(store, image, image.ref)
    binary = tree.get(kernel.binary)
    if binary is None or binary.kind != FILE:
        raise BuildError(f"kernel image {image.ref} has no file /{kernel.binary}: is it a kernel image?")
    modules = None
    if kernel.tar:
        modules = tree.get(kernel.tar)
        if modules is None or modules.kind != FILE:
            raise BuildError(
                f"kernel image {image.ref} has no file /{kernel.tar}: set `tar: none` if it has no modules"
            )
    return binary, modules


def part_tree(store: Store, spec: Spec, part: Part, images: Mapping[str, Image], sbom: bool = True) -> Tree:
    """The tree of one part, from the images the part reads."""
    family = part.family
    if reads_layers(part):
        ensure_indexes(store, [(layer, ref) for ref in part.images for layer in images[ref].layers])
    if family == KERNEL_PART:
        assert spec.kernel is not None
        _, modules = kernel_files(store, spec.kernel, images[spec.kernel.image])
        tree = Tree(part.name)
        assert modules is not None
        tree.apply_layer(nested_tar_entries(modules, f"{spec.kernel.image} /{spec.kernel.tar}"), part.name)
        return tree
    if family == INIT_PART:
        return init_tree(store, spec, images)
    if family == FILES_PART:
        return files_tree(spec, images, init_tree(store, spec, images), sbom=sbom)
    if family == VOLUME_KIND:
        return placement.volume_tree(store, spec, part.subject, images)
    if family == IMAGE_KIND:
        return placement.image_tree(store, spec, part.subject, images)
    if family == BUNDLE_KIND:
        return placement.bundle_tree(spec, part.subject, images)
    raise BuildError(f"unknown part {part.name!r}")


def init_tree(store: Store, spec: Spec, images: Mapping[str, Image]) -> Tree:
    tree = Tree(INIT_PART)
    for ref in spec.init:
        for layer in images[ref].layers:
            tree.apply_layer(load_index(store, layer, ref), f"init image {ref}")
    return tree


def merged_root(
    parts: Sequence[Part], tree_of: Callable[[Part], Tree], origins_of: Callable[[Part], PartOrigins] | None = None
) -> Tree:
    """The whole root: every part's tree in order, a later part's entry replacing an earlier one's; with
    `origins_of`, each path's LinuxKit headers (source and location) from the part that wrote it last."""
    root = Tree("root")
    for part in parts:
        entries = tree_of(part).entries()
        root.extend(entries, part.name)
        if origins_of is not None:
            origins = origins_of(part)
            root.pax.update((entry.path, origins.of(entry.path).pax_headers()) for entry in entries)
    return root


def origins(store: Store, spec: Spec, part: Part, images: Mapping[str, Image]) -> PartOrigins:
    """Where the part's entries came from, as LinuxKit's tar headers say it (read by the formats that
    write a root with them: an initrd of segments loads none of it)."""
    from .origins import part_origins

    return part_origins(store, spec, part.family, part.subject, images)


# the files section --------------------------------------------------------------------------
def files_tree(spec: Spec, images: Mapping[str, Image], below: Tree, sbom: bool = True) -> Tree:
    """The `files` section, as LinuxKit writes it: files default to 0600 and directories to 0700; the
    missing parent directories of an entry take its owner and its mode with x added wherever r or w
    is set. `below` is the init tree: a parent it already has keeps its mode and owner there
    (LinuxKit would turn /etc into 0700 for a 0600 file in /etc; we do not)."""
    ids = dict(bundles.context_of(spec).ids)
    tree = Tree(FILES_PART)
    _add_with_parents(tree, below, file_entry(INSTALLED_PATH, installed_report(spec, images)), 0o755)
    if sbom:  # `build --no-sbom` leaves both out, as LinuxKit's does
        name = spec_name(spec)
        _add_with_parents(tree, below, file_entry(SBOM_PATH, render_sbom(spec.images(), images, name)), 0o755)
        tree.add(file_entry(LINUXKIT_SBOM_PATH, render_linuxkit(spec.images(), images, name), mode=0o644))
    for item in spec.files:
        entry = _file_section_entry(spec, item, ids)
        if entry is not None:
            _add_with_parents(tree, below, entry, _parent_mode(entry, item))
    return tree


def _parent_mode(entry: Entry, item: FileEntry) -> int:
    mode = item.mode if item.mode is not None else (0o700 if item.directory else 0o600)
    for read_write, execute in ((0o600, 0o100), (0o060, 0o010), (0o006, 0o001)):
        if mode & (read_write | execute):
            mode |= execute
    return mode


def _add_with_parents(tree: Tree, below: Tree, entry: Entry, parent_mode: int) -> None:
    parts = entry.path.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        parent = "/".join(parts[:depth])
        if parent in tree:
            continue
        existing = below.get(parent)
        if existing is not None and existing.kind == DIR:
            tree.add(existing)
        else:
            tree.add(dir_entry(parent, mode=parent_mode, uid=entry.uid, gid=entry.gid))
    tree.add(entry, f"files: {entry.path}")


def installed_report(spec: Spec, images: Mapping[str, Image]) -> bytes:
    """What is installed: every image of the spec with the Debian packages it records."""
    lines = []
    for ref in spec.images():
        image = images.get(ref)
        if image is None:
            continue
        lines.append(f"{ImageRef.parse(ref).familiar()} {image.manifest_digest}")
        arches = recorded_architectures(image.labels, str(image.config.get("architecture") or "amd64"))
        for name, version in recorded_packages(image.labels):
            lines.append(f"  {name} {version} {arches[name]}")
    return ("\n".join(lines) + "\n").encode()


def _file_id(item: FileEntry, value: int | str | None, ids: Mapping[str, int]) -> int:
    return numeric_id(value, ids, f"{item.location}: files: {item.path}")


def _file_section_entry(spec: Spec, item: FileEntry, ids: Mapping[str, int]) -> Entry | None:
    path = posixpath.normpath(item.path.strip("/"))
    uid, gid = _file_id(item, item.uid, ids), _file_id(item, item.gid, ids)
    if item.directory:
        return dir_entry(path, mode=item.mode if item.mode is not None else 0o700, uid=uid, gid=gid)
    if item.symlink is not None:
        return Entry(path, SYMLINK, mode=0o777, uid=uid, gid=gid, mtime=build_epoch(), link=item.symlink)
    mode = item.mode if item.mode is not None else 0o600
    if item.contents is not None:
        data = item.contents.encode()
    elif item.metadata is not None:
        data = _metadata(spec, item.metadata)
    elif item.source is not None:
        source = _source_path(item)
        if not source.is_file():
            if item.optional:
                return None
            raise BadInput(missing_source(item))
        data = source.read_bytes()
    else:
        data = b""
    return file_entry(path, data, mode=mode, uid=uid, gid=gid)


def _not_a_file(path: Path) -> str:
    """Why a `files` source cannot be read as a file: a device or FIFO would block or never end."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        return "it is a symlink loop" if error.errno == errno.ELOOP else "it does not exist"
    for test, what in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return f"it is {what}"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "it is a device"
    return "it cannot be read"


def _metadata(spec: Spec, kind: str) -> bytes:
    if kind == "json":
        return json.dumps(spec.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
    return spec.to_yaml().encode()
