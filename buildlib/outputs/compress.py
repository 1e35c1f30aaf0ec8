"""Compressors for initrd segments: each makes self-contained members the kernel can unpack in a row.

zstd is the default: at level 3 it compresses about ten times faster than gzip -6, to a smaller
initrd, and the kernel decompresses it faster at boot (CONFIG_RD_ZSTD, on by default since Linux
5.9 and in Debian's kernels). gzip stays for older kernels; `none` for debugging. Every member is
framed with no time or host detail, so the bytes depend only on the input and the library version.
"""

from __future__ import annotations

import enum
import zlib
from collections.abc import Sequence
from typing import Any, Protocol

from ..errors import BadInput

GZIP_LEVEL = 6
ZSTD_LEVEL = 3
_GZIP_WBITS = 31  # zlib's gzip framing: mtime 0, no file name, the same header on every machine


class Streamer(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Compression(enum.Enum):
    ZSTD = "zstd"
    GZIP = "gzip"
    NONE = "none"

    @classmethod
    def parse(cls, name: str) -> Compression:
        try:
            return cls(name)
        except ValueError:
            raise BadInput(f"unknown initrd compression {name!r}; choose zstd, gzip or none") from None

    @property
    def suffix(self) -> str:
        return {"zstd": ".zst", "gzip": ".gz", "none": ""}[self.value]

    def member(self, pieces: Sequence[bytes]) -> bytes:
        """One complete compressed member (a gzip member, a zstd frame) of the data `pieces` hold in a row
        (the bytes are the same however it is cut: both libraries gather their input into their own blocks)."""
        if self is Compression.NONE:
            return b"".join(pieces)
        streamer = self.streamer()
        return b"".join([*(streamer.compress(piece) for piece in pieces), streamer.flush()])

    def streamer(self) -> Streamer:
        """A member written piece by piece, for entries too big to hold."""
        if self is Compression.GZIP:
            return zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
        if self is Compression.ZSTD:
            return _zstd().ZstdCompressor(level=ZSTD_LEVEL, write_content_size=False).compressobj()  # type: ignore[no-any-return]
        return _Identity()

    def version(self) -> str:
        """The library version, part of every segment's key: another version may write other bytes."""
        if self is Compression.GZIP:
            return f"zlib {zlib.ZLIB_RUNTIME_VERSION} level {GZIP_LEVEL}"
        if self is Compression.ZSTD:
            return f"zstd {_zstd().ZSTD_VERSION} level {ZSTD_LEVEL}"
        return "none"


def decompress(data: bytes) -> bytes:
    """Everything in a row of members of any of our compressions (for tests and tools)."""
    out, position = bytearray(), 0
    while position < len(data):
        rest = data[position:]
        if rest.startswith(b"\x1f\x8b"):
            inflater = zlib.decompressobj(_GZIP_WBITS)
            out += inflater.decompress(rest)
            position = len(data) - len(inflater.unused_data)
        elif rest.startswith(b"\x28\xb5\x2f\xfd"):
            reader = _zstd().ZstdDecompressor().decompressobj()
            out += reader.decompress(rest)
            position = len(data) - len(reader.unused_data)
        else:
            out += rest
            break
    return bytes(out)


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def _zstd() -> Any:
    import zstandard  # imported when used: a no-change build never needs it

    return zstandard
