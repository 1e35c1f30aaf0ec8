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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..fsutil import atomic_writer, read_json, write_json_atomic
from . import BuiltParts, MiB, too_small
from .fat import fat_bytes_needed, make_fat
from .initrd import join_segments
from .partition import ESP_TYPE, MBR_FAT16_LBA, MBR_FAT32_LBA, SECTOR, write_gpt, write_mbr
from .tools import derived_serial, derived_uuid, run_tool

SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
PARTITION_START = MiB  # the first partition starts at 1 MiB, as partitioning tools align it
GPT_TAIL = MiB  # room for the backup GPT, kept aligned
GRUB_EFI_MODULES = ("part_gpt", "part_msdos", "fat", "iso9660", "search", "search_fs_file", "linux", "boot", "echo")


@dataclass(frozen=True)
class Stage:
    name: str
    filename: str
    build: Callable[[BuiltParts, Path], dict[str, object] | None]  # returns facts to keep in .key
    needs: tuple[str, ...] = ()
    uses_root: bool = False  # reads the merged tree (the layers), not only the segments
    disk: bool = False  # its size is --size


STAGES: dict[str, Stage] = {}


def stage_path(stage_dir: Path, name: str) -> Path:
    return stage_dir / STAGES[name].filename


def key_path(stage_dir: Path, name: str) -> Path:
    return stage_dir / f"{STAGES[name].filename}.key"


def stage_info(stage_dir: Path, name: str) -> dict[str, object]:
    value = read_json(key_path(stage_dir, name))
    assert isinstance(value, dict)
    return value


def stages_for(names: tuple[str, ...]) -> list[str]:
    """Every stage the given ones need, each after what it needs."""
    order: list[str] = []

    def visit(name: str) -> None:
        for need in STAGES[name].needs:
            visit(need)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    return order


def run_stage(name: str, parts: BuiltParts, key: str) -> None:
    assert parts.stage_dir is not None
    parts.stage_dir.mkdir(parents=True, exist_ok=True)
    extra = STAGES[name].build(parts, stage_path(parts.stage_dir, name)) or {}
    write_json_atomic(key_path(parts.stage_dir, name), {"key": key, **extra})


def _register(stage: Stage) -> None:
    STAGES[stage.name] = stage


# initrds ------------------------------------------------------------------------------------
def _initrd(parts: BuiltParts, target: Path) -> None:
    join_segments(parts.segments, target, parts.ucode)


def _boot_initrd(parts: BuiltParts, target: Path) -> None:
    parts.need_kernel("this")
    join_segments(parts.boot_segments, target, parts.ucode)


_register(Stage("initrd", "initrd.img", _initrd))
_register(Stage("boot-initrd", "boot-initrd.img", _boot_initrd))


# the merged root ----------------------------------------------------------------------------
def _root_tar(parts: BuiltParts, target: Path) -> dict[str, object]:
    """The merged root, once; `body` is where its end-of-archive blocks start, so the tar and docker
    formats append their own entries to a copy of the body."""
    from .tar import TAR_PREPENDED, write_tar

    if parts.root is None:
        raise BadInput("this format needs the part trees; this build did not provide them")
    root = parts.root()
    with atomic_writer(target) as out:
        body = write_tar(root, out)
    return {"body": body, "paths": sorted(p for p in TAR_PREPENDED if p in root)}


_register(Stage("root", "root.tar", _root_tar, uses_root=True))


# disks --------------------------------------------------------------------------------------
def syslinux_config(cmdline: str, kernel: str, initrd: str) -> bytes:
    return (
        "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL linux\n  KERNEL {kernel}\n  INITRD {initrd}\n  APPEND {cmdline}\n"
    ).encode()


def grub_config(cmdline: str) -> bytes:
    """GRUB's embedded config: find the kernel's file system, boot it; no menu, no wait."""
    words = " ".join("'" + word.replace("'", "'\\''") + "'" for word in cmdline.split())
    return (
        "search --no-floppy --set=root --file /boot/kernel\n"
        f"linux /boot/kernel {words}\ninitrd /boot/initrd.img\nboot\n"
    ).encode()


def grub_efi(cmdline: str, target: Path, epoch: int) -> None:
    """A standalone BOOTX64.EFI with the config built in (grub-mkimage writes no time or random)."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        config = Path(scratch) / "grub.cfg"
        config.write_bytes(grub_config(cmdline))
        run_tool(
            ["grub-mkimage", "-O", "x86_64-efi", "-o", str(target), "-p", "/EFI/BOOT", "-c", str(config)]
            + list(GRUB_EFI_MODULES),
            epoch,
        )


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


def _efi_disk(parts: BuiltParts, target: Path) -> None:
    kernel = parts.need_kernel("this")
    initrd = parts.stage("initrd")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        loader = Path(scratch) / "BOOTX64.EFI"
        grub_efi(parts.cmdline, loader, parts.epoch)
        files = [("EFI/BOOT/BOOTX64.EFI", loader), ("boot/kernel", kernel), ("boot/initrd.img", initrd)]
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


_register(Stage("bios-disk", "bios.img", _bios_disk, needs=("initrd",), disk=True))
_register(Stage("efi-disk", "efi.img", _efi_disk, needs=("initrd",), disk=True))


def copy_sparse(source: Path, target: Path) -> None:
    """Copy a disk image keeping its holes (cp --sparse=always), atomically."""
    tmp = target.with_name(f".{target.name}.tmp")
    run_tool(["cp", "--sparse=always", str(source), str(tmp)], 0)
    tmp.chmod(0o644)
    tmp.replace(target)
