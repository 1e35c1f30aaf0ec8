"""Disk formats, all from the two disk stages (`bios-disk`: MBR, FAT, syslinux; `efi-disk`: GPT, ESP, GRUB).

raw-bios and aws are the BIOS disk as it is, raw-efi the EFI disk; qcow2, VHD and VMDK are qemu-img
conversions, gcp a GNU tar of disk.raw in gzip. qemu-img stamps VHDs with the clock and a random id
and VMDKs with a random content id: those fields are rewritten from the build epoch and the content
key, checksums included, so every format is reproducible.
"""

from __future__ import annotations

import gzip
import struct
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..fsutil import atomic_writer
from .efi import EFI_LOADERS
from .formats import BIOS_ARCHES, BuiltParts, Format, register
from .stages import copy_sparse
from .tools import derived_bytes, derived_uuid, run_tool

VHD_EPOCH = 946684800  # VHD times count from 2000-01-01 UTC
VHD_FOOTER = 512


def _convert(parts: BuiltParts, stage: str, target: Path, fmt: str, *options: str) -> None:
    """qemu-img convert into a scratch folder, under the target's own name (a VMDK records its file
    name), then fixed up and renamed into place."""
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as scratch:
        made = Path(scratch) / target.name
        run_tool(
            ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, *options, str(parts.stage(stage)), str(made)],
            parts.epoch,
        )
        if fmt == "vpc":
            fix_vhd(made, parts.key, parts.epoch)
        elif fmt == "vmdk":
            fix_vmdk(made, parts.key)
        made.chmod(0o644)
        made.replace(target)


def fix_vhd(path: Path, key: str, epoch: int) -> None:
    """Rewrite every copy of the VHD footer (at the end, and for dynamic disks at the start) with the
    build epoch as its time stamp and an id derived from the content."""
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.seek(size - VHD_FOOTER)
        footer = bytearray(handle.read(VHD_FOOTER))
        footer[24:28] = struct.pack(">I", max(epoch - VHD_EPOCH, 0))
        footer[68:84] = derived_uuid(key, "vhd").bytes
        footer[64:68] = b"\0\0\0\0"
        footer[64:68] = struct.pack(">I", ~sum(footer) & 0xFFFFFFFF)
        offsets = [size - VHD_FOOTER]
        handle.seek(0)
        if handle.read(8) == b"conectix" and size > VHD_FOOTER:
            offsets.append(0)
        for offset in offsets:
            handle.seek(offset)
            handle.write(footer)


def fix_vmdk(path: Path, key: str) -> None:
    """The embedded descriptor's CID from the content instead of a random number."""
    with open(path, "r+b") as handle:
        header = handle.read(512)
        offset_sectors, size_sectors = struct.unpack("<QQ", header[28:44])
        handle.seek(offset_sectors * 512)
        descriptor = handle.read(size_sectors * 512)
        # The text ends at its first NUL: qemu-img rewrites the descriptor with a new random CID as it
        # writes, and a CID a digit shorter than the one before leaves the old last byte behind the NUL.
        lines = descriptor.split(b"\0", 1)[0].split(b"\n")
        cid = derived_bytes(key, "vmdk", 4).hex().encode()
        lines = [b"CID=" + cid if line.startswith(b"CID=") else line for line in lines]
        text = b"\n".join(lines)
        handle.seek(offset_sectors * 512)
        handle.write(text.ljust(len(descriptor), b"\0"))


def _raw_bios(parts: BuiltParts, prefix: Path) -> None:
    copy_sparse(parts.stage("bios-disk"), RAW_BIOS.targets(prefix)[0])


def _raw_efi(parts: BuiltParts, prefix: Path) -> None:
    copy_sparse(parts.stage("efi-disk"), RAW_EFI.targets(prefix)[0])


def _aws(parts: BuiltParts, prefix: Path) -> None:
    copy_sparse(parts.stage("bios-disk"), AWS.targets(prefix)[0])


def _qcow2_bios(parts: BuiltParts, prefix: Path) -> None:
    _convert(parts, "bios-disk", QCOW2_BIOS.targets(prefix)[0], "qcow2")


def _qcow2_efi(parts: BuiltParts, prefix: Path) -> None:
    _convert(parts, "efi-disk", QCOW2_EFI.targets(prefix)[0], "qcow2")


def _vhd(parts: BuiltParts, prefix: Path) -> None:
    _convert(parts, "bios-disk", VHD.targets(prefix)[0], "vpc", "-o", "subformat=fixed,force_size=on")


def _dynamic_vhd(parts: BuiltParts, prefix: Path) -> None:
    _convert(parts, "bios-disk", DYNAMIC_VHD.targets(prefix)[0], "vpc", "-o", "subformat=dynamic,force_size=on")


def _vmdk(parts: BuiltParts, prefix: Path) -> None:
    _convert(parts, "bios-disk", VMDK.targets(prefix)[0], "vmdk")


def _gcp(parts: BuiltParts, prefix: Path) -> None:
    """NAME.img.tar.gz: disk.raw in a GNU tar, gzipped, as Compute Engine imports it."""
    disk = parts.stage("bios-disk")
    info = tarfile.TarInfo("disk.raw")
    info.size = disk.stat().st_size
    info.mtime = parts.epoch
    info.mode = 0o644
    info.uname = info.gname = ""
    (target,) = GCP.targets(prefix)
    with (
        atomic_writer(target) as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as archive,
        open(disk, "rb") as data,
    ):
        archive.addfile(info, data)


def _disk(name: str, suffix: str, write: Callable[[BuiltParts, Path], None], stage: str, doc: str) -> Format:
    arches = BIOS_ARCHES if stage == "bios-disk" else tuple(EFI_LOADERS)
    return register(Format(name, (suffix,), write, stages=(stage,), disk=True, arches=arches, doc=doc))


RAW_BIOS = _disk("raw-bios", "-bios.img", _raw_bios, "bios-disk", "a raw disk (MBR, FAT, syslinux) for BIOS")
RAW_EFI = _disk("raw-efi", "-efi.img", _raw_efi, "efi-disk", "a raw disk (GPT, EFI system partition, GRUB) for UEFI")
QCOW2_BIOS = _disk("qcow2-bios", ".qcow2", _qcow2_bios, "bios-disk", "the BIOS disk as qcow2")
QCOW2_EFI = _disk("qcow2-efi", "-efi.qcow2", _qcow2_efi, "efi-disk", "the EFI disk as qcow2")
VHD = _disk("vhd", ".vhd", _vhd, "bios-disk", "the BIOS disk as a fixed VHD")
DYNAMIC_VHD = _disk("dynamic-vhd", ".vhd", _dynamic_vhd, "bios-disk", "the BIOS disk as a dynamic VHD")
VMDK = _disk("vmdk", ".vmdk", _vmdk, "bios-disk", "the BIOS disk as a VMDK")
GCP = _disk("gcp", ".img.tar.gz", _gcp, "bios-disk", "the BIOS disk as disk.raw in a tar.gz, for Compute Engine")
AWS = _disk("aws", ".raw", _aws, "bios-disk", "the BIOS disk, raw, for AWS")
