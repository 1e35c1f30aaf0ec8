"""The EFI loader of the EFI formats: a standalone GRUB for the architecture the build is for.

UEFI firmware boots removable media from EFI/BOOT/BOOT<ARCH>.EFI (BOOTX64.EFI on x86-64, BOOTAA64.EFI
on arm64). The host's grub-mkimage writes a GRUB image for any target from that target's module folder
(`-d`): x86_64-efi comes from the host's grub-efi-amd64-bin, arm64-efi from Debian's
grub-efi-arm64-bin .deb, unpacked into the store (buildlib.outputs.grub_modules) since an amd64 host cannot
install it. The config is built in, so nothing but the loader sits beside the kernel and initrd.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from .tools import run_tool

GRUB_LIB = Path("/usr/lib/grub")
# efi_gop: on EFI, GRUB's `linux` must hand the kernel a graphics mode (plain text is not one it accepts
# there); without a video driver it finds none and prints "no suitable video mode found" on every boot.
GRUB_EFI_MODULES = (
    *("part_gpt", "part_msdos", "fat", "iso9660", "search", "search_fs_file", "linux", "boot", "echo"),
    "efi_gop",
)


@dataclass(frozen=True)
class EfiLoader:
    arch: str  # Debian's name of the architecture
    target: str  # grub-mkimage's -O
    filename: str  # the removable-media path's file name, under EFI/BOOT
    package: str  # the Debian package holding the target's modules
    modules: Path | None = None  # the module folder; None: the host's own (GRUB_LIB/target)

    @property
    def path(self) -> str:
        return f"EFI/BOOT/{self.filename}"

    def module_dir(self) -> Path:
        return self.modules or GRUB_LIB / self.target


EFI_LOADERS = {
    "amd64": EfiLoader("amd64", "x86_64-efi", "BOOTX64.EFI", "grub-efi-amd64-bin"),
    "arm64": EfiLoader("arm64", "arm64-efi", "BOOTAA64.EFI", "grub-efi-arm64-bin"),
}


def loader_for(arch: str) -> EfiLoader:
    loader = EFI_LOADERS.get(arch)
    if loader is None:
        raise BadInput(f"distrokit has no EFI loader for {arch}: EFI formats are built for {', '.join(EFI_LOADERS)}")
    return loader


def grub_config(cmdline: str) -> bytes:
    """GRUB's embedded config: find the kernel's file system, boot it; no menu, no wait."""
    words = " ".join("'" + word.replace("'", "'\\''") + "'" for word in cmdline.split())
    return (
        "search --no-floppy --set=root --file /boot/kernel\n"
        f"linux /boot/kernel {words}\ninitrd /boot/initrd.img\nboot\n"
    ).encode()


def grub_efi(loader: EfiLoader, cmdline: str, target: Path, epoch: int) -> None:
    """A standalone GRUB for `loader` with the config built in (grub-mkimage writes no time or random)."""
    modules = loader.module_dir()
    if not (modules / "moddep.lst").is_file():
        raise BadInput(f"GRUB's {loader.target} modules are not in {modules}: run `apt-get install {loader.package}`")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        config = Path(scratch) / "grub.cfg"
        config.write_bytes(grub_config(cmdline))
        command = ["grub-mkimage", "-d", str(modules), "-O", loader.target, "-o", str(target), "-p", "/EFI/BOOT"]
        run_tool([*command, "-c", str(config), *GRUB_EFI_MODULES], epoch)
