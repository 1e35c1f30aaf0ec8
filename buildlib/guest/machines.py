"""Which QEMU emulates a guest: chosen from the architecture of the kernel it boots (or forced with --arch).

An x86 kernel (a bzImage) boots in qemu-system-x86_64's default PC; an arm64 `Image` in
qemu-system-aarch64's `virt` machine with `-cpu max`, whose serial port is a PL011 (`ttyAMA0`).
A spec written for x86 names `console=ttyS0`; on a machine whose serial port has another name that
console does not exist and the guest would be silent, so it is renamed for the machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import arches
from ..errors import BadInput

# where each kernel format keeps its magic: (offset, bytes)
_BZIMAGE_MAGIC = (0x202, b"HdrS")
_ARM64_IMAGE_MAGIC = (0x38, b"ARM\x64")
_RISCV_IMAGE_MAGIC = (0x38, b"RSC\x05")


@dataclass(frozen=True)
class Firmware:
    """A machine's UEFI firmware, from Debian: the code, and the template of its variable store when
    the firmware is given as two flash devices (the template is copied for each instance: it is written)."""

    code: Path
    vars: Path | None  # None: the code alone, as -bios
    package: str


@dataclass(frozen=True)
class SecureBoot:
    """UEFI Secure Boot, enforced: firmware built with it, a variable store with keys enrolled, and the
    machine it needs (OVMF's secure build keeps its variables in SMM, so only code in SMM can write them:
    a guest cannot enroll its own key or turn Secure Boot off)."""

    firmware: Firmware
    args: tuple[str, ...]


@dataclass(frozen=True)
class Machine:
    """How QEMU runs a guest of one architecture: the binary, its machine, console and firmware."""

    arch: str  # Debian's name
    qemu: str
    package: str  # the Debian package that brings `qemu`
    args: tuple[str, ...]  # the machine and CPU
    console: str  # the guest's name of the serial port QEMU's -serial is
    uefi: Firmware
    bios: bool = True  # boot media without firmware named (a PC's SeaBIOS); else always through UEFI
    secure_boot: SecureBoot | None = None  # None: distrokit boots no Secure Boot guest of this architecture

    @property
    def native(self) -> bool:
        """True when the host runs this architecture, so KVM could run it."""
        return self.arch == arches.host_arch()


MACHINES: dict[str, Machine] = {
    "amd64": Machine(
        "amd64",
        "qemu-system-x86_64",
        "qemu-system-x86",
        (),
        "ttyS0",
        Firmware(Path("/usr/share/ovmf/OVMF.fd"), None, "ovmf"),
        secure_boot=SecureBoot(
            # Microsoft's keys in db and KEK (ms.fd): what signs shim, as on a PC sold with Secure Boot on
            Firmware(
                Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"), Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd"), "ovmf"
            ),
            ("-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on"),
        ),
    ),
    "arm64": Machine(
        "arm64",
        "qemu-system-aarch64",
        "qemu-system-arm",
        ("-machine", "virt", "-cpu", "max,pauth-impdef=on"),
        "ttyAMA0",
        Firmware(Path("/usr/share/AAVMF/AAVMF_CODE.fd"), Path("/usr/share/AAVMF/AAVMF_VARS.fd"), "qemu-efi-aarch64"),
        bios=False,
    ),
}
# The FAT short names of the removable-media EFI loaders: a boot medium holding one is for that architecture.
_EFI_LOADER_NAMES = ((b"BOOTAA64EFI", "arm64"), (b"BOOTX64 EFI", "amd64"))
_BIOS_LOADER_NAMES = (b"LDLINUX SYS", b"ISOLINUXBIN", b"isolinux.bin")  # syslinux on FAT, isolinux on an ISO
_MEDIUM_SCAN = 64 << 20


def kernel_arch(kernel: Path) -> str | None:
    """The architecture a kernel file is built for: bzImage, arm64 or riscv `Image`, or ELF (vmlinux)."""
    try:
        with open(kernel, "rb") as handle:
            head = handle.read(0x210)
    except OSError:
        return None
    for arch, (offset, magic) in (
        ("amd64", _BZIMAGE_MAGIC),
        ("arm64", _ARM64_IMAGE_MAGIC),
        ("riscv64", _RISCV_IMAGE_MAGIC),
    ):
        if head[offset : offset + len(magic)] == magic:
            return arch
    return arches.elf_arch(kernel)


@dataclass(frozen=True)
class Loaders:
    """The boot loaders a medium holds: an EFI loader (and its architecture), a BIOS one (syslinux)."""

    efi_arch: str | None = None
    bios: bool = False

    @property
    def efi_only(self) -> bool:
        return self.efi_arch is not None and not self.bios


def medium_loaders(image: Path) -> Loaders:
    """The loaders of a boot medium (an ISO or a disk, raw or qcow2), from their names in the file's first
    64 MiB: the FAT directory entry of EFI/BOOT/BOOTAA64.EFI or BOOTX64.EFI, and syslinux's ldlinux.sys
    (a disk's FAT) or isolinux.bin (an ISO's directory). An ESP's directories come before the kernel, and
    qcow2 keeps the guest's bytes as they are."""
    efi_arch, bios, tail = None, False, b""
    try:
        with open(image, "rb") as handle:
            for _ in range(_MEDIUM_SCAN // (1 << 20)):
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                window = tail + chunk
                efi_arch = efi_arch or next((arch for name, arch in _EFI_LOADER_NAMES if name in window), None)
                bios = bios or any(name in window for name in _BIOS_LOADER_NAMES)
                if efi_arch and bios:
                    break
                tail = chunk[-16:]
    except OSError:
        pass
    return Loaders(efi_arch, bios)


def medium_arch(image: Path) -> str | None:
    """The architecture of a boot medium from the EFI loader it holds (None without one)."""
    return medium_loaders(image).efi_arch


def machine_for(kernel: Path, arch: str | None = None) -> Machine:
    """The machine for `kernel`: `arch` when forced, else the kernel's own architecture, else amd64."""
    chosen = arches.normalise(arch) if arch else (kernel_arch(kernel) or "amd64")
    machine = MACHINES.get(chosen)
    if machine is None:
        raise BadInput(f"{kernel}: distrokit cannot boot {chosen} kernels; it boots {', '.join(sorted(MACHINES))}")
    return machine


def console_for(cmdline: str, machine: Machine) -> str:
    """`cmdline` with an x86 serial console (`console=ttyS0[,OPTIONS]`) renamed to the machine's serial port."""
    if machine.console == "ttyS0":
        return cmdline
    return re.sub(r"(?<!\S)console=ttyS0(?=[,\s]|$)", f"console={machine.console}", cmdline)
