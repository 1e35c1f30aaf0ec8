"""A streaming writer of newc cpio archives, the format the kernel unpacks an initramfs from.

Deterministic: inode numbers count from 1 in archive order, owners and times come from the entries.
A hard link carries its data on the first name only: the kernel links later names to the first.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterable
from typing import IO

from ..rootfs.layers import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry, OpenSources

TRAILER = "TRAILER!!!"
_TYPE_BITS = {
    FILE: stat.S_IFREG,
    DIR: stat.S_IFDIR,
    SYMLINK: stat.S_IFLNK,
    CHARDEV: stat.S_IFCHR,
    BLOCKDEV: stat.S_IFBLK,
    FIFO: stat.S_IFIFO,
}


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


class CpioWriter:
    def __init__(self, out: IO[bytes], on_entry: Callable[[], None] = lambda: None) -> None:
        self.out = out
        self.on_entry = on_entry  # called between entries, where a compressed member may end
        self._next_ino = 1
        self._inodes: dict[str, int] = {}  # hard-link group (its target's path) -> inode written
        self._links: dict[str, int] = {}  # hard-link group -> number of names
        self._targets: dict[str, Entry] = {}
        self._sources: OpenSources | None = None  # while write_all runs

    def write_all(self, entries: Iterable[Entry]) -> None:
        entries = list(entries)
        for entry in entries:
            if entry.kind == HARDLINK:
                self._links[entry.link] = self._links.get(entry.link, 1) + 1
        self._targets = {entry.path: entry for entry in entries if entry.path in self._links}
        sources = self._sources = OpenSources()
        try:
            for entry in entries:
                self.write(entry)
                self.on_entry()
        finally:
            self._sources = None
            sources.close()
        self.close()

    def write(self, entry: Entry) -> None:
        group = entry.link if entry.kind == HARDLINK else entry.path
        if group in self._links:
            self._write_linked(entry, group)
            return
        ino = self._next_ino
        self._next_ino += 1
        if entry.kind == SYMLINK:
            link_target = entry.link.encode("utf-8", "surrogateescape")
            self._header(entry.path, stat.S_IFLNK | 0o777, entry, ino=ino, size=len(link_target))
            self.out.write(link_target + _pad(len(link_target)))
            return
        mode = _TYPE_BITS[entry.kind] | entry.mode
        size = entry.size if entry.kind == FILE else 0
        self._header(entry.path, mode, entry, ino=ino, nlink=2 if entry.kind == DIR else 1, size=size)
        if size:
            self._copy(entry)

    def _write_linked(self, entry: Entry, group: str) -> None:
        """A name of a hard-linked file: the first name in the archive carries the data."""
        target = self._targets.get(group)
        if target is None or target.kind != FILE:
            raise ValueError(f"hard link {entry.path} points at {group}, which is not a file in this archive")
        ino = self._inodes.get(group)
        size = 0
        if ino is None:
            ino = self._inodes[group] = self._next_ino
            self._next_ino += 1
            size = target.size
        self._header(entry.path, stat.S_IFREG | target.mode, target, ino=ino, nlink=self._links[group], size=size)
        if size:
            self._copy(target)

    def _copy(self, entry: Entry) -> None:
        written = 0
        for chunk in entry.read_chunks(self._sources):
            self.out.write(chunk)
            written += len(chunk)
        self.out.write(_pad(written))

    def close(self) -> None:
        self._raw_header(TRAILER, ino=0, mode=0, uid=0, gid=0, nlink=1, mtime=0, size=0, dev=(0, 0))

    def _header(self, path: str, mode: int, entry: Entry, *, ino: int, nlink: int = 1, size: int = 0) -> None:
        self._raw_header(
            path,
            ino=ino,
            mode=mode,
            uid=entry.uid,
            gid=entry.gid,
            nlink=nlink,
            mtime=max(entry.mtime, 0),
            size=size,
            dev=(entry.devmajor, entry.devminor),
        )

    def _raw_header(
        self,
        name: str,
        *,
        ino: int,
        mode: int,
        uid: int,
        gid: int,
        nlink: int,
        mtime: int,
        size: int,
        dev: tuple[int, int],
    ) -> None:
        encoded = name.encode("utf-8", "surrogateescape") + b"\0"  # a name that is not UTF-8 stays its bytes
        fields = (ino, mode, uid, gid, nlink, mtime, size, 0, 0, dev[0], dev[1], len(encoded), 0)
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.out.write(header + encoded + _pad(len(header) + len(encoded)))
