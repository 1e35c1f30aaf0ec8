"""An ordered file-system tree built by applying layers with OCI whiteout semantics.

`.wh.NAME` removes NAME from the layers below; `.wh..wh..opq` hides everything the layers below put
in its directory; missing parent directories are created.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import replace

from .epoch import build_epoch
from .errors import HostileLayer
from .images import Image, Store
from .layers import DIR, FILE, HARDLINK, OPAQUE, WHITEOUT, Entry, load_index

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
        entries = []
        for entry in self.entries():
            link = posixpath.join(prefix, entry.link) if entry.kind == HARDLINK else entry.link
            entries.append(replace(entry, path=posixpath.join(prefix, entry.path), link=link))
        moved.extend(entries, name)
        return moved

    def extend(self, entries: Iterable[Entry], where: str = "") -> None:
        """Add entries in any order: hard links after everything else, so their targets are there."""
        links = []
        for entry in entries:
            if entry.kind == HARDLINK:
                links.append(entry)
            else:
                self.add(entry, where)
        for entry in links:
            self.add(entry, where)


def _path_key(path: str) -> tuple[str, ...]:
    return tuple(path.split("/"))


def file_entry(
    path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int | None = None
) -> Entry:
    """A file distrokit generates: its time is the build epoch (SOURCE_DATE_EPOCH) unless given."""
    when = build_epoch() if mtime is None else mtime
    return Entry(path.strip("/"), FILE, mode=mode, uid=uid, gid=gid, mtime=when, size=len(data), data=data)


def dir_entry(path: str, mode: int = DEFAULT_DIR_MODE, uid: int = 0, gid: int = 0, mtime: int | None = None) -> Entry:
    """A folder distrokit generates: its time is the build epoch (SOURCE_DATE_EPOCH) unless given."""
    when = build_epoch() if mtime is None else mtime
    return Entry(path.strip("/"), DIR, mode=mode, uid=uid, gid=gid, mtime=when)


def merged_image_tree(store: Store, image: Image, name: str) -> Tree:
    tree = Tree(name)
    for layer in image.layers:
        tree.apply_layer(load_index(store, layer), f"{name} layer {layer.digest}")
    return tree
