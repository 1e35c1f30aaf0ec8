"""The EFI loader of the EFI formats: a standalone GRUB for the architecture the build is for.

UEFI firmware boots removable media from EFI/BOOT/BOOT<ARCH>.EFI (BOOTX64.EFI on x86-64, BOOTAA64.EFI
on arm64). The host's grub-mkimage writes a GRUB image for any target from that target's module folder
(`-d`): x86_64-efi comes from the host's grub-efi-amd64-bin, arm64-efi from Debian's
grub-efi-arm64-bin .deb, unpacked into the store (buildlib.outputs.grub_modules) since an amd64 host cannot
install it. The config is built in, so nothing but the loader sits beside the kernel and initrd.

With `--secure-boot` (amd64) the loader is Debian's signed chain instead (components/secureboot):
shim, signed by Microsoft's UEFI CA, as BOOTX64.EFI; Debian's signed GRUB beside it as grubx64.efi,
which shim loads and checks against Debian's CA; GRUB hands the kernel to shim to check as well. A
signed GRUB cannot have a config built in (that would change the signed bytes): Debian's image reads
grub.cfg from its prefix, /EFI/debian on the device it was loaded from (`strings` on
grubx64.efi.signed shows the prefix and the built-in fallback to /boot/grub, then to its own folder).
"""

from __future__ import annotations

import struct
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


SECURE_BOOT_IMAGE = "distrokit/secureboot"  # components/secureboot, built from the .debs the lock pins
SIGNED_SHIM = "usr/lib/shim/shimx64.efi.signed"  # in the secureboot image, as the .debs install them
SIGNED_GRUB = "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed"
SIGNED_GRUB_NAME = "EFI/BOOT/grubx64.efi"  # shim loads grubx64.efi from its own folder
SIGNED_GRUB_CONFIG = "EFI/debian/grub.cfg"  # where Debian's signed GRUB looks (its prefix)
SECURE_BOOT_ARCHES = ("amd64",)
# the formats that boot through an EFI loader (gcp and aws are BIOS disks, as LinuxKit's)
EFI_FORMATS = ("iso-efi", "iso-efi-initrd", "raw-efi", "qcow2-efi")


@dataclass(frozen=True)
class SignedLoaders:
    """The signed chain of a Secure Boot medium: Debian's shim and GRUB, as files on the host."""

    shim: Path
    grub: Path


def authenticode_signed(path: Path) -> bool:
    """True when `path` is a PE image carrying an Authenticode signature (its certificate table, data
    directory 4 of the optional header, is not empty): what shim checks a kernel's signer against."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head[:2] != b"MZ" or len(head) < 0x40:
        return False
    pe = struct.unpack_from("<I", head, 0x3C)[0]
    optional = pe + 24
    if head[pe : pe + 4] != b"PE\0\0" or optional + 152 > len(head):
        return False
    magic = struct.unpack_from("<H", head, optional)[0]
    directories = optional + (112 if magic == 0x20B else 96)  # PE32+ or PE32
    _, size = struct.unpack_from("<II", head, directories + 4 * 8)
    return size > 0


def secure_boot_problem(formats: tuple[str, ...], arch: str) -> str | None:
    """Why `--secure-boot` cannot apply to this build (one line), or None when it can."""
    if arch not in SECURE_BOOT_ARCHES:
        return f"--secure-boot: distrokit builds Secure Boot media for {', '.join(SECURE_BOOT_ARCHES)} only, not {arch}"
    if not any(name in EFI_FORMATS for name in formats):
        return (
            f"--secure-boot: none of the formats asked for ({', '.join(formats)}) boots through EFI: "
            f"add one of {', '.join(EFI_FORMATS)} (-f)"
        )
    return None


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


def signed_grub_config(cmdline: str) -> bytes:
    """The signed GRUB's grub.cfg: the same boot, then, when shim refused the kernel ("bad shim
    signature"), a line saying so and a power-off instead of a GRUB prompt nobody is at."""
    return grub_config(cmdline) + b'echo "distrokit: the kernel was not booted (Secure Boot); powering off"\nhalt\n'


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
