"""`build --decompress-kernel`: the kernel as an uncompressed image, as LinuxKit's flag gives it.

A kernel binary is either a compressed file as a whole (arm64's Image.gz, or .xz, .zst) or an x86
bzImage, whose setup header says where its compressed payload (the vmlinux ELF) lies: at
`payload_offset` after the setup sectors, `payload_length` bytes long. Either is decompressed here;
LZ4, which Debian's cloud kernel uses, has no decoder in Python's standard library, so it goes
through Debian's `lz4` tool.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..errors import BadInput, BuildError
from ..fsutil import write_bytes_atomic

BZIMAGE_MAGIC_OFFSET, BZIMAGE_MAGIC = 0x202, b"HdrS"
SETUP_SECTS_OFFSET, PAYLOAD_OFFSET = 0x1F1, 0x248


def _zstd(data: bytes) -> bytes:
    import zstandard

    return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))


def _lz4(data: bytes) -> bytes:
    try:
        done = subprocess.run(["lz4", "-dc"], input=data, capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise BadInput("decompressing an LZ4 kernel needs the lz4 tool: run scripts/setup.sh") from exc
    if not done.stdout:  # the kernel's payload has trailing bytes lz4 complains of: only no output is an error
        raise BuildError(f"lz4 could not decompress the kernel: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def _lzma(data: bytes) -> bytes:
    return lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data)


def _gzip(data: bytes) -> bytes:
    # a bzImage payload may carry trailing bytes after the gzip member (its size); read one member
    return gzip.GzipFile(fileobj=io.BytesIO(data)).read()


def _xz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data)


DECODERS: tuple[tuple[bytes, str, Callable[[bytes], bytes]], ...] = (
    (b"\x1f\x8b", "gzip", _gzip),
    (b"\x1f\x9e", "gzip", _gzip),
    (b"\xfd7zXZ\x00", "xz", _xz),
    (b"\x28\xb5\x2f\xfd", "zstd", _zstd),
    (b"\x02\x21\x4c\x18", "lz4", _lz4),
    (b"\x04\x22\x4d\x18", "lz4", _lz4),
    (b"BZh", "bzip2", bz2.decompress),
    (b"\x5d\x00\x00", "lzma", _lzma),
)


def payload(kernel: bytes) -> bytes:
    """The compressed stream of a kernel: the bzImage payload, or the whole file."""
    if kernel[BZIMAGE_MAGIC_OFFSET : BZIMAGE_MAGIC_OFFSET + 4] != BZIMAGE_MAGIC:
        return kernel
    setup_sects = kernel[SETUP_SECTS_OFFSET] or 4
    offset, length = struct.unpack_from("<II", kernel, PAYLOAD_OFFSET)
    start = (setup_sects + 1) * 512 + offset
    return kernel[start : start + length]


def decompressed(kernel: bytes, name: str = "kernel") -> bytes:
    """The uncompressed kernel image; BadInput when it is not compressed in a known way."""
    stream = payload(kernel)
    for magic, _label, decode in DECODERS:
        if stream.startswith(magic):
            return decode(stream)
    raise BadInput(f"{name} is not compressed in a way distrokit knows (gzip, xz, zstd, lz4, bzip2, lzma)")


def write_decompressed(source: Path, target: Path) -> None:
    write_bytes_atomic(target, decompressed(source.read_bytes(), str(source)))
