"""Stages: the intermediates several formats share, each written once per build and kept in the store.

`initrd` (the ucode cpio and the segments joined), `boot-initrd` (the kernel-module and init segments
only: what mounts a squashfs, erofs or ISO root), `root` (the merged root as one tar: the one merge every
root-file-system format reads), `bios-disk` (MBR, FAT, syslinux) and `efi-disk` (GPT, ESP, GRUB). Each
is its own doit task; beside its file a small `.key` file names its inputs' key, so a format task
depends on a few bytes instead of hashing a 1 GiB disk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import BadInput
from .efi import SIGNED_GRUB_CONFIG, SIGNED_GRUB_NAME, authenticode_signed, grub_efi, signed_grub_config
from .fat import fat_bytes_needed, make_fat
from .formats import BuiltParts, MiB, Stage, register_stage, too_small
from .initrd import join_segments
from .partition import ESP_TYPE, MBR_FAT16_LBA, MBR_FAT32_LBA, SECTOR, write_gpt, write_mbr
from .tools import derived_serial, derived_uuid, run_tool

SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
PARTITION_START = MiB  # the first partition starts at 1 MiB, as partitioning tools align it
GPT_TAIL = MiB  # room for the backup GPT, kept aligned


# initrds ------------------------------------------------------------------------------------
def _initrd(parts: BuiltParts, target: Path) -> None:
    join_segments(parts.segments, target, parts.ucode)


def _boot_initrd(parts: BuiltParts, target: Path) -> None:
    parts.need_kernel("this")
    join_segments(parts.boot_segments, target, parts.ucode)


register_stage(Stage("initrd", "initrd.img", _initrd))
register_stage(Stage("boot-initrd", "boot-initrd.img", _boot_initrd))


# disks --------------------------------------------------------------------------------------
def syslinux_config(cmdline: str, kernel: str, initrd: str) -> bytes:
    return (
        "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL linux\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {cmdline}\n"
    ).encode()


def _new_disk(target: Path, size: int) -> Path:
    """An empty sparse file beside `target`, renamed into place by the caller."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.ftruncate(fd, size)
    os.close(fd)
    return Path(name)


def _finish(tmp: Path, target: Path) -> None:
    tmp.chmod(0o644)
    tmp.replace(target)


def _bios_disk(parts: BuiltParts, target: Path) -> None:
    kernel = parts.need_kernel("this")
    initrd = parts.stage("initrd")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        config = Path(scratch) / "syslinux.cfg"
        config.write_bytes(syslinux_config(parts.cmdline, "/kernel", "/initrd.img"))
        files = [("kernel", kernel), ("initrd.img", initrd), ("syslinux.cfg", config)]
        needed = PARTITION_START + fat_bytes_needed([p.stat().st_size for _, p in files] + [128 << 10])
        if parts.size < needed:
            raise too_small("BIOS disk formats", parts.size, needed)
        tmp = _new_disk(target, parts.size)
        try:
            fat_size = parts.size - PARTITION_START
            serial = derived_serial(parts.key, "bios-fat")
            kind = make_fat(tmp, PARTITION_START, fat_size, files, label="DISTROKIT", serial=serial, epoch=parts.epoch)
            run_tool(["syslinux", "--offset", str(PARTITION_START), "--install", str(tmp)], parts.epoch)
            boot_code = SYSLINUX_MBR.read_bytes()[:440]
            partition = (
                True,
                MBR_FAT32_LBA if kind == "FAT32" else MBR_FAT16_LBA,
                PARTITION_START // SECTOR,
                fat_size // SECTOR,
            )
            write_mbr(tmp, boot_code, bytes.fromhex(derived_serial(parts.key, "mbr")), [partition])
            _finish(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def efi_files(parts: BuiltParts, scratch: Path) -> list[tuple[str, Path]]:
    """What an EFI system partition (or an ISO's El Torito image) holds to boot: GRUB with its config
    built in; with --secure-boot, shim, Debian's signed GRUB and the config it reads beside them."""
    efi = parts.efi_loader()
    signed = parts.signed_loaders
    if signed is None:
        loader = scratch / efi.filename
        grub_efi(efi, parts.cmdline, loader, parts.epoch)
        return [(efi.path, loader)]
    kernel = parts.need_kernel("--secure-boot")
    if not authenticode_signed(kernel):
        raise BadInput(
            f"--secure-boot: the kernel of {parts.kernel_image or 'the spec'} carries no signature, so shim would "
            "refuse it: use a Debian-signed kernel (components/kernel) and no --decompress-kernel"
        )
    config = scratch / "grub.cfg"
    config.write_bytes(signed_grub_config(parts.cmdline))
    return [(efi.path, signed.shim), (SIGNED_GRUB_NAME, signed.grub), (SIGNED_GRUB_CONFIG, config)]


def _efi_disk(parts: BuiltParts, target: Path) -> None:
    kernel = parts.need_kernel("this")
    initrd = parts.stage("initrd")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        files = [*efi_files(parts, Path(scratch)), ("boot/kernel", kernel), ("boot/initrd.img", initrd)]
        needed = PARTITION_START + GPT_TAIL + fat_bytes_needed([p.stat().st_size for _, p in files])
        if parts.size < needed:
            raise too_small("EFI disk formats", parts.size, needed)
        tmp = _new_disk(target, parts.size)
        try:
            fat_size = parts.size - PARTITION_START - GPT_TAIL
            serial = derived_serial(parts.key, "esp-fat")
            make_fat(tmp, PARTITION_START, fat_size, files, label="EFI", serial=serial, epoch=parts.epoch)
            first = PARTITION_START // SECTOR
            esp = (ESP_TYPE, derived_uuid(parts.key, "esp"), first, first + fat_size // SECTOR - 1, "EFI system")
            write_gpt(tmp, derived_uuid(parts.key, "gpt-disk"), [esp])
            _finish(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


register_stage(Stage("bios-disk", "bios.img", _bios_disk, needs=("initrd",), disk=True))
register_stage(Stage("efi-disk", "efi.img", _efi_disk, needs=("initrd",), disk=True))


def copy_sparse(source: Path, target: Path) -> None:
    """Copy a disk image keeping its holes (cp --sparse=always), atomically."""
    tmp = target.with_name(f".{target.name}.tmp")
    run_tool(["cp", "--sparse=always", str(source), str(tmp)], 0)
    tmp.chmod(0o644)
    tmp.replace(target)
