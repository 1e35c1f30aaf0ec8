"""The `tar` output: the merged root file system as one tar, as `linuxkit build -f tar` makes it.

Built from the same part trees as the initrd segments, a later part's entry replacing an earlier
one's, so every path appears once (LinuxKit repeats etc, etc/hosts and containers/, which `docker
import` rejects). Like LinuxKit's, it carries boot/kernel and boot/cmdline. File data is streamed
from the layers; entries are written sorted, with owners and times from the entries, so the same
parts give the same bytes.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

from ..errors import BadInput, BuildError
from ..fsutil import atomic_writer, copy_range
from ..rootfs.layers import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from ..rootfs.origins import GENERATED_SOURCE, Origin, full_reference
from ..rootfs.tree import Tree, dir_entry, file_entry
from .formats import BuiltParts, Format, Stage, register, register_stage, stage_info

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


def _info(entry: Entry, name: str, kind: str, pax: Mapping[str, str] | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = _TYPES[kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = max(int(entry.mtime), 0)
    if kind in (CHARDEV, BLOCKDEV):
        info.devmajor, info.devminor = entry.devmajor, entry.devminor
    headers = {f"SCHILY.xattr.{key}": value for key, value in entry.xattrs}
    info.pax_headers = {**headers, **(pax or {})}
    return info


def write_tar(root: Tree, out: IO[bytes]) -> int:
    """Every entry of `root` once, parents first. Hard-linked names: the first one written carries the
    data, the others link to it (whatever their order in the layers). Returns the size of the body:
    where the end-of-archive blocks start."""
    written: dict[str, str] = {}  # hard-link group (the target's path) -> name that carries the data
    targets = {entry.link for entry in root.entries() if entry.kind == HARDLINK}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in root.entries():
            group = entry.link if entry.kind == HARDLINK else entry.path
            pax = root.pax.get(entry.path)  # LinuxKit's LINUXKIT.source and LINUXKIT.location
            if group in targets:
                _write_linked(archive, root, entry, group, written)
            elif entry.kind == SYMLINK:
                info = _info(entry, entry.path, SYMLINK, pax)
                info.linkname = entry.link
                archive.addfile(info)
            elif entry.kind == FILE:
                _write_file(archive, entry, entry.path, pax)
            else:
                archive.addfile(_info(entry, entry.path, entry.kind, pax))
        return archive.offset


def _write_file(archive: tarfile.TarFile, entry: Entry, name: str, pax: Mapping[str, str] | None = None) -> None:
    info = _info(entry, name, FILE, pax)
    info.size = entry.size
    archive.addfile(info, _ChunkReader(entry.read_chunks()))  # type: ignore[arg-type]


def _write_linked(archive: tarfile.TarFile, root: Tree, entry: Entry, group: str, written: dict[str, str]) -> None:
    target = root.get(group)
    if target is None or target.kind != FILE:
        raise BuildError(f"hard link {entry.path} points at {group}, which a later part replaced with a non-file")
    pax = root.pax.get(entry.path)
    first = written.get(group)
    if first is None:
        written[group] = entry.path
        _write_file(archive, target, entry.path, pax)
        return
    info = _info(target, entry.path, HARDLINK, pax)
    info.linkname = first
    archive.addfile(info)


BOOT_DIR, BOOT_KERNEL, BOOT_CMDLINE, BOOT_UCODE, DOCKERFILE = (
    "boot",
    "boot/kernel",
    "boot/cmdline",
    "boot/ucode.cpio",
    "Dockerfile",
)
TAR_PREPENDED = (BOOT_DIR, BOOT_KERNEL, BOOT_CMDLINE, BOOT_UCODE, DOCKERFILE)  # the root stage says which it has
DOCKERFILE_ORIGIN = Origin(GENERATED_SOURCE, "docker")  # LinuxKit writes its Dockerfile with no headers
DOCKERFILE_TEXT = '\nFROM scratch\n\nCOPY . ./\n\nENTRYPOINT ["/bin/rc.init"]\n'


def _boot_entries(parts: BuiltParts) -> list[Entry]:
    """boot/kernel, boot/cmdline and boot/ucode.cpio, as LinuxKit's tar has them."""
    if parts.kernel is None:
        return []
    entries = [
        dir_entry(BOOT_DIR, mtime=parts.epoch),
        _host_file(BOOT_KERNEL, parts.kernel, parts.epoch),
        file_entry(BOOT_CMDLINE, parts.cmdline.encode(), mode=0o644, mtime=parts.epoch),
    ]
    if parts.ucode is not None:
        entries.append(_host_file(BOOT_UCODE, parts.ucode, parts.epoch))
    return entries


def _host_file(path: str, source: Path, mtime: int) -> Entry:
    return Entry(path, FILE, mode=0o644, mtime=mtime, size=source.stat().st_size, source=str(source))


def _boot_origin(parts: BuiltParts) -> dict[str, str]:
    return Origin(full_reference(parts.kernel_image), "kernel").pax_headers() if parts.kernel_image else {}


def write_root_with(parts: BuiltParts, target: Path, before: list[Entry], after: list[Entry]) -> None:
    """The root stage's body between entries of our own, as one tar; a path the root has wins."""
    root_tar = parts.stage("root")
    info = stage_info(root_tar.parent, "root")
    has = set(info.get("paths", ()))  # type: ignore[call-overload]
    body = int(info["body"])  # type: ignore[call-overload]
    with atomic_writer(target) as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in (e for e in before if e.path not in has):
            _add(archive, entry, _boot_origin(parts))
        out.flush()
        with open(root_tar, "rb") as handle:
            copy_range(handle, out, body)
        archive.offset += body
        for entry in (e for e in after if e.path not in has):
            _add(archive, entry, DOCKERFILE_ORIGIN.pax_headers())


def _add(archive: tarfile.TarFile, entry: Entry, pax: Mapping[str, str] | None = None) -> None:
    if entry.kind == FILE:
        _write_file(archive, entry, entry.path, pax)
    else:
        archive.addfile(_info(entry, entry.path, entry.kind, pax))


def _tar(parts: BuiltParts, prefix: Path) -> None:
    (target,) = TAR.targets(prefix)
    write_root_with(parts, target, _boot_entries(parts), [])


def _docker(parts: BuiltParts, prefix: Path) -> None:
    """NAME.tar for `docker import`: the tar with a Dockerfile, each path once."""
    (target,) = DOCKER.targets(prefix)
    dockerfile = file_entry(DOCKERFILE, DOCKERFILE_TEXT.encode(), mode=0o644, mtime=parts.epoch)
    write_root_with(parts, target, _boot_entries(parts), [dockerfile])


def _tar_kernel_initrd(parts: BuiltParts, prefix: Path) -> None:
    """NAME-initrd.tar: kernel, initrd.img, cmdline and ucode.cpio, as LinuxKit writes it."""
    (target,) = TAR_KERNEL_INITRD.targets(prefix)
    entries = [_host_file("kernel", parts.kernel, parts.epoch)] if parts.kernel else []
    entries.append(_host_file("initrd.img", parts.stage("initrd"), parts.epoch))
    entries.append(file_entry("cmdline", parts.cmdline.encode(), mode=0o644, mtime=parts.epoch))
    if parts.ucode is not None:
        entries.append(_host_file("ucode.cpio", parts.ucode, parts.epoch))
    with atomic_writer(target) as out, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            _add(archive, entry)


TAR = register(
    Format("tar", (".tar",), _tar, stages=("root",), needs_kernel=False, doc="the merged root with boot/ as one tar")
)
DOCKER = register(
    Format("docker", (".tar",), _docker, stages=("root",), needs_kernel=False, doc="the tar with a Dockerfile")
)
TAR_KERNEL_INITRD = register(
    Format(
        "tar-kernel-initrd",
        ("-initrd.tar",),
        _tar_kernel_initrd,
        stages=("initrd",),
        needs_kernel=False,
        doc="kernel+initrd in a tar",
    )
)


# the merged root: the stage every tar-based format starts from -----------------------------------
def _root_tar(parts: BuiltParts, target: Path) -> dict[str, object]:
    """The merged root, once; `body` is where its end-of-archive blocks start, so the tar and docker
    formats append their own entries to a copy of the body."""
    if parts.root is None:
        raise BadInput("this format needs the part trees; this build did not provide them")
    root = parts.root()
    with atomic_writer(target) as out:
        body = write_tar(root, out)
    return {"body": body, "paths": sorted(p for p in TAR_PREPENDED if p in root)}


register_stage(Stage("root", "root.tar", _root_tar, uses_root=True))
