"""ISO formats, made with xorriso from files in the store (no copy, no root).

- iso-bios (NAME.iso): isolinux, isohybrid MBR: boots from a CD or a disk under BIOS.
- iso-efi (NAME-efi.iso): GRUB (BOOTX64.EFI, BOOTAA64.EFI on arm64) on an El Torito EFI image: boots
  under UEFI.
- iso-efi-initrd (NAME-efi-initrd.iso): both at once, a hybrid that boots under BIOS and UEFI.
- kernel+iso (NAME-kernel, NAME-cmdline, NAME.iso): the root as a Rock Ridge ISO, mounted read-only
  under a tmpfs overlay by NAME-boot-initrd.img's /init (`root=/dev/vda rootfstype=iso9660`).

Every date in the image is the build epoch (xorriso's --modification-date and --set_all_file_dates),
so the same parts give the same bytes on any day, in any time zone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .efi import EFI_LOADERS, SIGNED_GRUB_CONFIG
from .fat import fat_bytes_needed, make_fat
from .formats import BIOS_ARCHES, BOOT_INITRD_SUFFIX, CMDLINE_SUFFIX, KERNEL_SUFFIX, BuiltParts, Format, MiB, register
from .fsimage import unpacked_root_command
from .stages import efi_files, syslinux_config
from .tools import derived_serial, iso_date, run_tool

ISOLINUX_DIR = Path("/usr/lib/ISOLINUX")
SYSLINUX_BIOS = Path("/usr/lib/syslinux/modules/bios")
VOLUME_ID = "DISTROKIT"


def _dates(epoch: int) -> list[str]:
    """The volume's dates. File dates: SOURCE_DATE_EPOCH (tools.tool_env) makes xorriso set every
    atime and ctime to the mtime, and the staged files' mtimes are the epoch (xorriso 1.5.4 does not
    apply --set_all_file_dates to a folder given as a path)."""
    return [f"--modification-date={iso_date(epoch)}"]


def _bootable_iso(parts: BuiltParts, target: Path, bios: bool, efi: bool) -> None:
    """The ISO from a real folder staged in a scratch space: folders xorriso makes for graft points
    take the clock's time, whatever --set_all_file_dates says."""
    kernel = parts.need_kernel("ISO")
    args = ["-V", VOLUME_ID, "-r", *_dates(parts.epoch)]
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".iso-") as scratch_name:
        scratch = Path(scratch_name)
        tree = scratch / "tree"
        files = {"boot/kernel": kernel, "boot/initrd.img": parts.stage("initrd")}
        if bios:
            config = scratch / "isolinux.cfg"
            config.write_bytes(syslinux_config(parts.cmdline, "/boot/kernel", "/boot/initrd.img"))
            files["isolinux/isolinux.bin"] = ISOLINUX_DIR / "isolinux.bin"
            files["isolinux/ldlinux.c32"] = SYSLINUX_BIOS / "ldlinux.c32"
            files["isolinux/isolinux.cfg"] = config
            args += ["-isohybrid-mbr", str(ISOLINUX_DIR / "isohdpfx.bin"), "-c", "isolinux/boot.cat"]
            args += ["-b", "isolinux/isolinux.bin", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table"]
        if efi:
            image = scratch / "efiboot.img"
            # firmware loads the loader from the El Torito image, but GRUB sees the ISO 9660 tree as
            # its device: a signed GRUB's config is read from there
            files.update((path, file) for path, file in _efi_boot_image(parts, image) if path == SIGNED_GRUB_CONFIG)
            files["EFI/efiboot.img"] = image
            args += ["-eltorito-alt-boot"] if bios else ["-c", "EFI/boot.cat"]
            args += ["-e", "EFI/efiboot.img", "-no-emul-boot"]
            if bios:
                args += ["-isohybrid-gpt-basdat"]
        stage_tree(tree, files, parts.epoch)
        made = scratch / target.name
        run_tool(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(made), *args, str(tree)], parts.epoch)
        made.chmod(0o644)
        made.replace(target)


def stage_tree(tree: Path, files: dict[str, Path], epoch: int) -> None:
    """`files` (path in the image -> host file) copied into a folder whose modes and times are fixed,
    so neither the host's umask nor the clock shows in the image."""
    for name, source in files.items():
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)  # a copy: its time is set below (a link would share the store's)
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o644)
            os.utime(path, (epoch, epoch))
    for path in sorted((p for p in [tree, *tree.rglob("*")] if p.is_dir()), reverse=True):
        os.utime(path, (epoch, epoch))


def _efi_boot_image(parts: BuiltParts, image: Path) -> list[tuple[str, Path]]:
    """The El Torito EFI image: a small FAT holding EFI/BOOT/BOOTX64.EFI or BOOTAA64.EFI (GRUB, or with
    --secure-boot shim and the signed GRUB, which then read the kernel and initrd from the ISO's own
    file system)."""
    files = efi_files(parts, image.parent)
    size = -(-fat_bytes_needed([path.stat().st_size for _, path in files]) // MiB) * MiB
    with open(image, "wb") as handle:
        handle.truncate(size)
    serial = derived_serial(parts.key, "iso-efi-fat")
    make_fat(image, 0, size, files, label="EFIBOOT", serial=serial, epoch=parts.epoch)
    return files


def _iso_bios(parts: BuiltParts, prefix: Path) -> None:
    _bootable_iso(parts, ISO_BIOS.targets(prefix)[0], bios=True, efi=False)


def _iso_efi(parts: BuiltParts, prefix: Path) -> None:
    _bootable_iso(parts, ISO_EFI.targets(prefix)[0], bios=False, efi=True)


def _iso_efi_initrd(parts: BuiltParts, prefix: Path) -> None:
    _bootable_iso(parts, ISO_EFI_INITRD.targets(prefix)[0], bios=True, efi=True)


def _kernel_iso(parts: BuiltParts, prefix: Path) -> None:
    """The root file system as a Rock Ridge ISO: owners and modes kept (unpacked under fakeroot)."""
    parts.need_kernel("kernel+iso")
    (target,) = KERNEL_ISO.own_targets(prefix)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".kernel-iso-") as scratch:
        tree, image = Path(scratch) / "root", Path(scratch) / "image.iso"
        tree.mkdir()
        tree.chmod(0o755)  # not the host's umask
        make = ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(image), "-V", VOLUME_ID, "-R", *_dates(parts.epoch)]
        run_tool(unpacked_root_command(parts, tree, [*make, str(tree)]), parts.epoch)
        image.chmod(0o644)
        image.replace(target)


ISO_BIOS = register(
    Format(
        "iso-bios", (".iso",), _iso_bios, stages=("initrd",), arches=BIOS_ARCHES, doc="a BIOS-bootable (isohybrid) ISO"
    )
)
ISO_EFI = register(
    Format("iso-efi", ("-efi.iso",), _iso_efi, stages=("initrd",), arches=tuple(EFI_LOADERS), doc="a UEFI-bootable ISO")
)
ISO_EFI_INITRD = register(
    Format(
        "iso-efi-initrd",
        ("-efi-initrd.iso",),
        _iso_efi_initrd,
        stages=("initrd",),
        arches=BIOS_ARCHES,
        doc="a hybrid ISO that boots under BIOS and UEFI",
    )
)
KERNEL_ISO = register(
    Format(
        "kernel+iso",
        (KERNEL_SUFFIX, CMDLINE_SUFFIX, ".iso", BOOT_INITRD_SUFFIX),
        _kernel_iso,
        stages=("root",),
        uses_cmdline=False,
        doc="kernel, cmdline and the root as an ISO (booted read-only under a tmpfs overlay)",
    )
)
