"""Merge layers and generated files into trees, one tree per part of the root file system.

A tree applies layers in order with OCI whiteout semantics (`.wh.NAME` removes NAME from the layers
below; `.wh..wh..opq` hides everything the layers below put in its directory) and creates missing
parent directories. Each part (kernel modules, init, each container, files) becomes its own segment
of the output, so a change to one part rebuilds only that part.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .components import PACKAGES_LABEL
from .errors import BadInput, BuildError, HostileLayer
from .images import Image, Store
from .layers import DIR, FILE, HARDLINK, OPAQUE, SYMLINK, WHITEOUT, Entry, load_index, nested_tar_entries
from .refs import ImageRef
from .spec import FileEntry, Kernel, Spec

DEFAULT_DIR_MODE = 0o755


class Tree:
    """An ordered file-system tree: path -> Entry, built by applying layers in order."""

    def __init__(self, name: str = "root") -> None:
        self.name = name
        self._entries: dict[str, Entry] = {}

    def __contains__(self, path: str) -> bool:
        return path in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> Entry | None:
        return self._entries.get(path.strip("/"))

    def apply_layer(self, entries: Iterable[Entry], where: str) -> None:
        """Apply one layer: its whiteouts hide only what the layers below it put there."""
        lower = set(self._entries)
        for entry in entries:
            if entry.kind == OPAQUE:
                self._remove_children(entry.path, only=lower)
            elif entry.kind == WHITEOUT:
                self._remove(entry.path, only=lower)
            else:
                self.add(entry, where)
                lower.discard(entry.path)

    def add(self, entry: Entry, where: str = "") -> None:
        """Place `entry`, replacing what was at its path and creating missing parents."""
        existing = self._entries.get(entry.path)
        if existing is not None and existing.kind == DIR and entry.kind != DIR:
            self._remove_children(entry.path)
        if entry.kind == HARDLINK and entry.link not in self._entries:
            raise HostileLayer(f"{where}: hard link {entry.path!r} points at {entry.link!r}, which does not exist")
        self._make_parents(entry.path, entry.mtime)
        self._entries[entry.path] = entry

    def _make_parents(self, path: str, mtime: int) -> None:
        parent = posixpath.dirname(path)
        missing = []
        while parent and parent not in self._entries:
            missing.append(parent)
            parent = posixpath.dirname(parent)
        for directory in reversed(missing):
            self._entries[directory] = Entry(directory, DIR, mode=DEFAULT_DIR_MODE, mtime=mtime)
        if parent and self._entries[parent].kind != DIR:
            # A layer put a file where a later one wants a directory: the later one wins.
            self._entries[parent] = Entry(parent, DIR, mode=DEFAULT_DIR_MODE, mtime=mtime)

    def _remove(self, path: str, only: set[str] | None = None) -> None:
        if only is None or path in only:
            self._entries.pop(path, None)
        self._remove_children(path, only)

    def _remove_children(self, path: str, only: set[str] | None = None) -> None:
        prefix = path + "/" if path else ""
        doomed = [p for p in self._entries if p.startswith(prefix) and p != path and (only is None or p in only)]
        for child in doomed:
            del self._entries[child]

    def entries(self) -> list[Entry]:
        """Every entry, parents before children, in a stable order."""
        return [self._entries[path] for path in sorted(self._entries, key=_path_key)]

    def subtree(self, root: str) -> Iterator[Entry]:
        prefix = root.strip("/") + "/"
        for entry in self.entries():
            if entry.path.startswith(prefix):
                yield entry

    def relocated(self, prefix: str, name: str) -> Tree:
        """This tree placed under `prefix` (a container's rootfs under containers/...)."""
        moved = Tree(name)
        prefix = prefix.strip("/")
        for entry in self.entries():
            link = posixpath.join(prefix, entry.link) if entry.kind == HARDLINK else entry.link
            moved.add(replace(entry, path=posixpath.join(prefix, entry.path), link=link), name)
        return moved


def _path_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def file_entry(path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int = 0) -> Entry:
    return Entry(path.strip("/"), FILE, mode=mode, uid=uid, gid=gid, mtime=mtime, size=len(data), data=data)


def dir_entry(path: str, mode: int = DEFAULT_DIR_MODE, uid: int = 0, gid: int = 0, mtime: int = 0) -> Entry:
    return Entry(path.strip("/"), DIR, mode=mode, uid=uid, gid=gid, mtime=mtime)


# placement ----------------------------------------------------------------------------------
# The parts of a root file system, in the order their segments are joined: a later part's file
# replaces an earlier one's at the same path, as the kernel unpacks concatenated archives.
KERNEL_PART = "kernel"
INIT_PART = "init"
FILES_PART = "files"
INSTALLED_PATH = "etc/distrokit/installed"


@dataclass(frozen=True)
class Part:
    """One segment of the root: what it is called and which images it reads."""

    name: str
    images: tuple[str, ...]


def plan_parts(spec: Spec) -> tuple[Part, ...]:
    parts = []
    if spec.kernel is not None and spec.kernel.tar:
        parts.append(Part(KERNEL_PART, (spec.kernel.image,)))
    if spec.init:
        parts.append(Part(INIT_PART, tuple(spec.init)))
    parts.append(Part(FILES_PART, spec.images()))
    return tuple(parts)


def part_fragment(spec: Spec, part: Part) -> object:
    """The part of the spec a part reads: its content key besides the images' digests."""
    if part.name == KERNEL_PART:
        assert spec.kernel is not None
        return [spec.kernel.image, spec.kernel.tar]
    if part.name == FILES_PART:
        return [item.to_dict() for item in spec.files] + [spec.to_dict() if _uses_metadata(spec) else None]
    return list(part.images)


def part_sources(spec: Spec, part: Part) -> list[str]:
    """Host files a part reads (`files` entries with a source), for the task's file dependencies."""
    if part.name != FILES_PART:
        return []
    sources = (_source_path(item) for item in spec.files if item.source is not None)
    return [str(path) for path in sources if path.is_file()]


def _uses_metadata(spec: Spec) -> bool:
    return any(item.metadata for item in spec.files)


def _source_path(item: FileEntry) -> Path:
    # As in LinuxKit, a relative source is read from the folder the build runs in.
    return Path(item.source or "").expanduser()


def merged_image_tree(store: Store, image: Image, name: str) -> Tree:
    tree = Tree(name)
    for layer in image.layers:
        tree.apply_layer(load_index(store, layer), f"{name} layer {layer.digest}")
    return tree


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


def part_tree(store: Store, spec: Spec, part: Part, images: Mapping[str, Image]) -> Tree:
    """The tree of one part, from the images the part reads."""
    if part.name == KERNEL_PART:
        assert spec.kernel is not None
        _, modules = kernel_files(store, spec.kernel, images[spec.kernel.image])
        tree = Tree(part.name)
        assert modules is not None
        tree.apply_layer(nested_tar_entries(modules, f"{spec.kernel.image} /{spec.kernel.tar}"), part.name)
        return tree
    if part.name == INIT_PART:
        tree = Tree(part.name)
        for ref in part.images:
            for layer in images[ref].layers:
                tree.apply_layer(load_index(store, layer), f"init image {ref}")
        return tree
    if part.name == FILES_PART:
        return files_tree(spec, images)
    raise BuildError(f"unknown part {part.name!r}")


def files_tree(spec: Spec, images: Mapping[str, Image]) -> Tree:
    tree = Tree(FILES_PART)
    tree.add(file_entry(INSTALLED_PATH, installed_report(spec, images)))
    for item in spec.files:
        entry = _file_section_entry(spec, item)
        if entry is not None:
            tree.add(entry, f"files: {item.path}")
    return tree


def installed_report(spec: Spec, images: Mapping[str, Image]) -> bytes:
    """What is installed: every image of the spec with the Debian packages it records."""
    lines = []
    for ref in spec.images():
        image = images.get(ref)
        if image is None:
            continue
        lines.append(f"{ImageRef.parse(ref).familiar()} {image.manifest_digest}")
        for name, version in json.loads(image.labels.get(PACKAGES_LABEL, "[]")):
            lines.append(f"  {name} {version}")
    return ("\n".join(lines) + "\n").encode()


def _file_section_entry(spec: Spec, item: FileEntry) -> Entry | None:
    path = item.path.strip("/")
    uid = item.uid if isinstance(item.uid, int) else 0
    gid = item.gid if isinstance(item.gid, int) else 0
    if item.directory:
        return dir_entry(path, mode=item.mode if item.mode is not None else 0o755, uid=uid, gid=gid)
    if item.symlink is not None:
        return Entry(path, SYMLINK, mode=0o777, uid=uid, gid=gid, link=item.symlink)
    mode = item.mode if item.mode is not None else 0o600
    if item.contents is not None:
        data = item.contents.encode()
    elif item.metadata is not None:
        data = _metadata(spec, item.metadata)
    elif item.source is not None:
        source = _source_path(item)
        if not source.exists():
            if item.optional:
                return None
            raise BadInput(f"{item.location.file}:{item.location.line}: files: source {item.source} does not exist")
        data = source.read_bytes()
    else:
        data = b""
    return file_entry(path, data, mode=mode, uid=uid, gid=gid)


def _metadata(spec: Spec, kind: str) -> bytes:
    if kind == "json":
        return json.dumps(spec.to_dict(), indent=2, sort_keys=True).encode() + b"\n"
    return spec.to_yaml().encode()
