"""buildlib.outputs.disk: what qemu-img writes at random in a VMDK is made to depend on the content."""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

from buildlib.outputs.disk import fix_vmdk


def vmdk_from_qemu(folder: Path) -> Path:
    """A VMDK as qemu-img makes one (its descriptor names its file: the same name each time)."""
    folder.mkdir()
    raw, vmdk = folder / "disk.raw", folder / "disk.vmdk"
    raw.write_bytes(b"distrokit" * 100_000)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "vmdk", str(raw), str(vmdk)], check=True)
    return vmdk


def rewrite_descriptor(vmdk: Path, edit: Callable[[bytes], bytes]) -> None:
    """Put `edit(region)` in place of the descriptor's region, as qemu-img's own rewrite would."""
    data = bytearray(vmdk.read_bytes())
    offset, size = (value * 512 for value in struct.unpack("<QQ", data[28:44]))
    region = edit(bytes(data[offset : offset + size]))
    assert len(region) == size
    data[offset : offset + size] = region
    vmdk.write_bytes(bytes(data))


def test_a_vmdk_is_the_same_whatever_cid_qemu_img_wrote_and_left_behind(tmp_path: Path) -> None:
    images = [vmdk_from_qemu(tmp_path / name) for name in ("eight", "seven", "stray")]

    def seven_digits(region: bytes, stray: bytes = b"") -> bytes:
        text = region.split(b"\0", 1)[0]
        shorter = re.sub(rb"(?m)^CID=[0-9a-f]+$", b"CID=1234567", text)
        assert shorter != text
        return (shorter + b"\0" + stray).ljust(len(region), b"\0")

    rewrite_descriptor(images[1], seven_digits)
    # qemu-img writing a CID a digit shorter over an 8-digit one: the old text's last byte stays behind its NUL
    rewrite_descriptor(images[2], lambda region: seven_digits(region, b"\n"))
    for image in images:
        fix_vmdk(image, "the key of the content")
    first = images[0].read_bytes()
    assert all(image.read_bytes() == first for image in images[1:])
    assert b"CID=1234567" not in first
