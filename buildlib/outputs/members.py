"""What an output holds, member by member: the entries of an initrd (concatenated, compressed newc cpio
archives) or of a tar, each with its header fields and the SHA256 of its data, read as a stream.

`first_difference` names the first member in which two outputs differ, and which field, so a release
that does not rebuild bit for bit can be traced to a file without diffoscope.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..fsutil import CHUNK

_GZIP, _ZSTD, _NEWC = b"\x1f\x8b", b"\x28\xb5\x2f\xfd", b"070701"
_NEWC_FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "size", "devmajor", "devminor", "rdevmajor", "rdevminor")


@dataclass(frozen=True)
class Member:
    """One entry: its path, its header fields (name, value) in archive order, and its data's SHA256."""

    path: str
    header: tuple[tuple[str, object], ...]
    data: str


@dataclass(frozen=True)
class Difference:
    member: str  # the member's path ("" when the members match and the framing differs)
    detail: str  # what differs, e.g. "mtime 0 != 1700000000"


def kind_of(path: Path) -> str | None:
    """`cpio` (an initrd, compressed or not), `tar`, or None for a file without members."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if head.startswith((_GZIP, _ZSTD, _NEWC)):
        return "cpio"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def members(path: Path) -> Iterator[Member]:
    kind = kind_of(path)
    if kind == "cpio":
        with _decompressed(path) as stream:
            yield from cpio_members(stream)
    elif kind == "tar":
        yield from tar_members(path)


def _decompressed(path: Path) -> IO[bytes]:
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic.startswith(_GZIP):
        return gzip.open(path, "rb")  # type: ignore[return-value]  # reads member after member
    if magic.startswith(_ZSTD):
        import zstandard

        stream: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), read_across_frames=True)  # noqa: SIM115
        return stream
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


def cpio_members(stream: IO[bytes]) -> Iterator[Member]:
    """Every entry of a row of newc archives (trailers and the padding between archives skipped)."""
    reader = _Reader(stream)
    while True:
        magic = reader.skip_zeros_then(6)
        if not magic:
            return
        if magic != _NEWC:
            raise ValueError(f"not a newc cpio header at byte {reader.position - 6}: {magic!r}")
        values = [int(reader.exact(8), 16) for _ in range(13)]
        name_size = values[11]
        name = reader.exact(name_size)[:-1].decode(errors="replace")
        reader.align(4)
        size = values[6]
        digest = hashlib.sha256()
        left = size
        while left:
            chunk = reader.exact(min(left, CHUNK))
            digest.update(chunk)
            left -= len(chunk)
        reader.align(4)
        if name == "TRAILER!!!":
            continue
        yield Member(name, tuple(zip(_NEWC_FIELDS, values[:11], strict=True)), digest.hexdigest())


class _Reader:
    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.position = 0
        self.pending = b""

    def read(self, count: int) -> bytes:
        data = self.pending[:count]
        self.pending = self.pending[count:]
        while len(data) < count:
            chunk = self.stream.read(max(count - len(data), CHUNK))
            if not chunk:
                break
            need = count - len(data)
            data += chunk[:need]
            self.pending = chunk[need:]
        self.position += len(data)
        return data

    def exact(self, count: int) -> bytes:
        data = self.read(count)
        if len(data) != count:
            raise ValueError(f"the archive ends inside an entry at byte {self.position}")
        return data

    def align(self, boundary: int) -> None:
        self.exact(-self.position % boundary)

    def skip_zeros_then(self, count: int) -> bytes:
        """The next `count` bytes after any NUL padding (b"" at the end of the stream)."""
        while True:
            first = self.read(1)
            if first != b"\0":
                break
        if not first:
            return b""
        return first + self.exact(count - 1)


def tar_members(path: Path) -> Iterator[Member]:
    with tarfile.open(path, "r|*") as archive:
        for info in archive:
            digest = hashlib.sha256()
            if info.isfile():
                handle = archive.extractfile(info)
                assert handle is not None
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
            header = (
                ("type", info.type.decode()),
                ("mode", info.mode),
                ("uid", info.uid),
                ("gid", info.gid),
                ("uname", info.uname),
                ("gname", info.gname),
                ("mtime", info.mtime),
                ("size", info.size),
                ("linkname", info.linkname),
                ("devmajor", info.devmajor),
                ("devminor", info.devminor),
                ("pax", tuple(sorted(info.pax_headers.items()))),
            )
            yield Member(info.name, header, digest.hexdigest())


def first_difference(expected: Path, rebuilt: Path) -> Difference | None:
    """The first member in which two outputs differ, and how; None when their members are all alike."""
    if kind_of(expected) != kind_of(rebuilt):
        return Difference("", f"not the same kind of file ({kind_of(expected)} != {kind_of(rebuilt)})")
    if kind_of(expected) is None:
        return None
    left, right = members(expected), members(rebuilt)
    while True:
        a, b = next(left, None), next(right, None)
        if a is None and b is None:
            return None
        if a is None or b is None:
            extra = a or b
            assert extra is not None
            side = "the expected output" if a else "the rebuilt output"
            return Difference(extra.path, f"only {side} has it (and everything after it)")
        if a != b:
            return Difference(a.path if a.path == b.path else f"{a.path} / {b.path}", _describe(a, b))


def _describe(a: Member, b: Member) -> str:
    if a.path != b.path:
        return f"different entries at the same place: {a.path!r} != {b.path!r}"
    changed = [f"{name} {x!r} != {y!r}" for (name, x), (_, y) in zip(a.header, b.header, strict=True) if x != y]
    if a.data != b.data:
        changed.append(f"data sha256 {a.data} != {b.data}")  # in full: a cut pair may read alike
    return ", ".join(changed)
