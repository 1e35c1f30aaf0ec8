"""buildlib.outputs.kernelimage: compressed kernels and bzImage payloads, decompressed."""

from __future__ import annotations

import gzip
import lzma
import struct

import pytest

from buildlib.errors import BadInput
from buildlib.outputs.kernelimage import (
    BZIMAGE_MAGIC,
    BZIMAGE_MAGIC_OFFSET,
    PAYLOAD_OFFSET,
    SETUP_SECTS_OFFSET,
    decompressed,
)

VMLINUX = b"\x7fELF" + bytes(range(256)) * 64


def bzimage(payload: bytes, setup_sects: int = 4, offset: int = 0x100) -> bytes:
    image = bytearray((setup_sects + 1) * 512 + offset)
    image[SETUP_SECTS_OFFSET] = setup_sects
    image[BZIMAGE_MAGIC_OFFSET : BZIMAGE_MAGIC_OFFSET + 4] = BZIMAGE_MAGIC
    struct.pack_into("<II", image, PAYLOAD_OFFSET, offset, len(payload))
    return bytes(image) + payload + b"\0" * 64  # the real ones carry more after the payload


def test_whole_file_compressions() -> None:
    assert decompressed(gzip.compress(VMLINUX, mtime=0)) == VMLINUX
    assert decompressed(lzma.compress(VMLINUX)) == VMLINUX


@pytest.mark.parametrize("compress", [lambda d: gzip.compress(d, mtime=0), lzma.compress])
def test_bzimage_payload(compress) -> None:  # type: ignore[no-untyped-def]
    assert decompressed(bzimage(compress(VMLINUX))) == VMLINUX


def test_an_uncompressed_kernel_is_bad_input() -> None:
    with pytest.raises(BadInput, match="not compressed"):
        decompressed(VMLINUX, "vmlinux")
