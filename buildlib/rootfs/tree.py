"""An ordered file-system tree built by applying layers with OCI whiteout semantics.

`.wh.NAME` removes NAME from the layers below; `.wh..wh..opq` hides everything the layers below put
in its directory; missing parent directories are created.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import replace

from ..epoch import build_epoch
from ..errors import HostileLayer
from ..store.images import Image, Store
from .layers import DIR, FILE, HARDLINK, OPAQUE, SYMLINK, WHITEOUT, Entry, load_index

DEFAULT_DIR_MODE = 0o755


class Tree:
    """An ordered file-system tree: path -> Entry, built by applying layers in order."""

    def __init__(self, name: str = "root") -> None:
        self.name = name
        self._entries: dict[str, Entry] = {}
        self._links: dict[str, list[str]] = {}  # a file's path -> the hard links to it
        # extra PAX headers of entries, by path: where each entry of a merged root came from (see origins)
        self.pax: dict[str, dict[str, str]] = {}

    def __contains__(self, path: str) -> bool:
        return path in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str) -> Entry | None:
        return self._entries.get(path.strip("/"))

    def apply_layer(self, entries: Iterable[Entry], where: str) -> None:
        """Apply one layer. Its whiteouts hide only what the layers below it put there (OCI), wherever
        they stand in the layer, so they go first: an entry of the layer under a whited-out directory
        then finds its parent made again instead of an orphaned path."""
        entries = list(entries)
        for entry in entries:
            if entry.kind == OPAQUE:
                self._remove_children(entry.path)
            elif entry.kind == WHITEOUT:
                self._remove(entry.path)
        for entry in entries:
            if entry.kind not in (OPAQUE, WHITEOUT):
                self._check_through_symlink(entry, where)
                self.add(entry, where)

    def _check_through_symlink(self, entry: Entry, where: str) -> None:
        """A layer entry under a path that is a symlink would be written wherever the link points (out of
        the root, on a host that extracts it): such a layer is refused, not rewritten."""
        parent = posixpath.dirname(entry.path)
        while parent:
            found = self._entries.get(parent)
            if found is not None and found.kind == SYMLINK:
                raise HostileLayer(
                    f"{where}: entry {entry.path!r} is written through the symlink {parent!r} -> {found.link!r}; "
                    "refusing this layer"
                )
            parent = posixpath.dirname(parent)

    def add(self, entry: Entry, where: str = "") -> None:
        """Place `entry`, replacing what was at its path and creating missing parents."""
        existing = self._entries.get(entry.path)
        if existing is not None and existing.kind == DIR and entry.kind != DIR:
            self._remove_children(entry.path)
        if entry.kind == HARDLINK:
            entry = self._resolved_link(entry, where)
            if entry.link == entry.path:
                return  # a name linked to itself: the file stays as it is
        self._make_parents(entry.path, entry.mtime)
        if entry.kind == HARDLINK:
            entry = self._resolved_link(entry, where)  # its own parents may have displaced its file
        self._forget([entry.path])
        self._entries[entry.path] = entry
        if entry.kind == HARDLINK:
            self._links.setdefault(entry.link, []).append(entry.path)

    def _resolved_link(self, entry: Entry, where: str) -> Entry:
        """A hard link pointed at the file that holds the data (a link to a link is a link to its file)."""
        target = self._entries.get(entry.link)
        if target is not None and target.kind == HARDLINK:
            entry, target = replace(entry, link=target.link), self._entries.get(target.link)
        if target is None:
            raise HostileLayer(f"{where}: hard link {entry.path!r} points at {entry.link!r}, which does not exist")
        if target.kind != FILE:
            raise HostileLayer(f"{where}: hard link {entry.path!r} points at {entry.link!r}, which is no regular file")
        return entry

    def _forget(self, paths: Iterable[str]) -> None:
        """Take `paths` out of the tree. A file that other names are hard links to lives on under the
        first of them (as a file system keeps an inode while a name is left)."""
        gone = {}
        for path in paths:
            old = self._entries.pop(path, None)
            if old is not None:
                gone[path] = old
        for path, old in gone.items():
            if old.kind == HARDLINK:
                names = self._links.get(old.link)
                if names and path in names:
                    names.remove(path)
            elif path in self._links:
                survivors = [n for n in self._links.pop(path) if self._is_link(n, path)]
                if survivors:
                    first, rest = survivors[0], survivors[1:]
                    self._entries[first] = replace(old, path=first)
                    for name in rest:
                        self._entries[name] = replace(self._entries[name], link=first)
                    self._links[first] = rest

    def _is_link(self, name: str, target: str) -> bool:
        entry = self._entries.get(name)
        return entry is not None and entry.kind == HARDLINK and entry.link == target

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
            self._forget([parent])
            self._entries[parent] = Entry(parent, DIR, mode=DEFAULT_DIR_MODE, mtime=mtime)

    def _remove(self, path: str) -> None:
        self._forget([path])
        self._remove_children(path)

    def _remove_children(self, path: str) -> None:
        prefix = path + "/" if path else ""
        self._forget([p for p in self._entries if p.startswith(prefix) and p != path])

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
        tree.apply_layer(load_index(store, layer, name), f"{name} layer {layer.digest}")
    return tree
