"""The `tar` output: the merged root file system as one tar, as `linuxkit build -f tar` makes it.

Built from the same part trees as the initrd segments, a later part's entry replacing an earlier
one's, so every path appears once (LinuxKit repeats etc, etc/hosts and containers/, which `docker
import` rejects). Like LinuxKit's, it carries boot/kernel and boot/cmdline. File data is streamed
from the layers; entries are written sorted, with owners and times from the entries, so the same
parts give the same bytes.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from ..epoch import build_epoch
from ..errors import BadInput, BuildError
from ..fsutil import atomic_writer
from ..layers import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from ..tree import Tree, dir_entry, file_entry
from . import BuiltParts, Format, register

_TYPES = {
    FILE: tarfile.REGTYPE,
    DIR: tarfile.DIRTYPE,
    SYMLINK: tarfile.SYMTYPE,
    HARDLINK: tarfile.LNKTYPE,
    CHARDEV: tarfile.CHRTYPE,
    BLOCKDEV: tarfile.BLKTYPE,
    FIFO: tarfile.FIFOTYPE,
}


class _ChunkReader:
    """A file object over an entry's streamed chunks, for tarfile.addfile."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def _info(entry: Entry, name: str, kind: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = _TYPES[kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = max(int(entry.mtime), 0)
    if kind in (CHARDEV, BLOCKDEV):
        info.devmajor, info.devminor = entry.devmajor, entry.devminor
    if entry.xattrs:
        info.pax_headers = {f"SCHILY.xattr.{key}": value for key, value in entry.xattrs}
    return info


def write_tar(root: Tree, out: IO[bytes]) -> None:
    """Every entry of `root` once, parents first. Hard-linked names: the first one written carries the
    data, the others link to it (whatever their order in the layers)."""
    written: dict[str, str] = {}  # hard-link group (the target's path) -> name that carries the data
    targets = {entry.link for entry in root.entries() if entry.kind == HARDLINK}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in root.entries():
            group = entry.link if entry.kind == HARDLINK else entry.path
            if group in targets:
                _write_linked(archive, root, entry, group, written)
            elif entry.kind == SYMLINK:
                info = _info(entry, entry.path, SYMLINK)
                info.linkname = entry.link
                archive.addfile(info)
            elif entry.kind == FILE:
                _write_file(archive, entry, entry.path)
            else:
                archive.addfile(_info(entry, entry.path, entry.kind))


def _write_file(archive: tarfile.TarFile, entry: Entry, name: str) -> None:
    info = _info(entry, name, FILE)
    info.size = entry.size
    archive.addfile(info, _ChunkReader(entry.read_chunks()))  # type: ignore[arg-type]


def _write_linked(archive: tarfile.TarFile, root: Tree, entry: Entry, group: str, written: dict[str, str]) -> None:
    target = root.get(group)
    if target is None or target.kind != FILE:
        raise BuildError(f"hard link {entry.path} points at {group}, which a later part replaced with a non-file")
    first = written.get(group)
    if first is None:
        written[group] = entry.path
        _write_file(archive, target, entry.path)
        return
    info = _info(target, entry.path, HARDLINK)
    info.linkname = first
    archive.addfile(info)


def _with_boot(parts: BuiltParts, root: Tree) -> Tree:
    """boot/kernel and boot/cmdline, as LinuxKit's tar has them; a path the root already has is kept."""
    if parts.kernel is None:
        return root
    kernel = parts.kernel
    boot = [
        dir_entry("boot"),
        Entry("boot/kernel", FILE, mode=0o644, mtime=build_epoch(), size=kernel.stat().st_size, source=str(kernel)),
        file_entry("boot/cmdline", parts.cmdline.encode(), mode=0o644),
    ]
    for entry in boot:
        if entry.path not in root:
            root.add(entry, "boot")
    return root


def _tar(parts: BuiltParts, prefix: Path) -> None:
    if parts.root is None:
        raise BadInput("the tar format needs the part trees; this build did not provide them")
    (target,) = TAR.targets(prefix)
    root = _with_boot(parts, parts.root())
    with atomic_writer(target) as out:
        write_tar(root, out)


TAR = register(Format("tar", (".tar",), _tar))
