"""How `distrokit run` boots an artefact: the mode comes from what the path is, as `linuxkit run qemu` does.

- An output prefix: NAME-kernel + NAME-initrd.img boot directly (kernel+initrd); NAME-squashfs.img or
  NAME-erofs.img (kernel+squashfs, kernel+erofs) or NAME.iso beside NAME-boot-initrd.img (kernel+iso)
  boot the kernel with the boot initrd and the image as the first virtio disk, `root=/dev/vda`.
- A `.iso` file boots from the CD drive; a `.img`, `.raw`, `.qcow2`, `.vhd` or `.vmdk` file from disk.
- `--iso`, `--kernel` and `--squashfs` force a mode; `--uefi` boots through the machine's UEFI firmware
  (OVMF on a PC; `--fw PATH` names another firmware and implies --uefi); without it, SeaBIOS on a PC. A
  machine without a BIOS (arm64's `virt`) boots an ISO or a disk through UEFI (AAVMF) always, from a
  virtio-scsi CD-ROM or a virtio disk named first in the firmware's boot order.
- `--secure-boot` boots an ISO or a disk through firmware that enforces UEFI Secure Boot with
  Microsoft's keys enrolled (OVMF's secboot build on a q35 machine with SMM), as a PC sold with Secure
  Boot on: only media whose loaders and kernel are signed (`build --secure-boot`) get past it.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from .machines import MACHINES, Firmware, Machine, medium_loaders

DEFAULT_FIRMWARE = MACHINES["amd64"].uefi.code
DISK_SUFFIXES = {".img": "raw", ".raw": "raw", ".qcow2": "qcow2", ".vhd": "vpc", ".vmdk": "vmdk"}
ROOT_IMAGES = (("-squashfs.img", "squashfs"), ("-erofs.img", "erofs"))
ROOT_DEVICE = "/dev/vda"
SECURE_BOOT_MEDIA = (
    "--secure-boot boots a medium through its signed loaders, not a kernel QEMU loads itself: "
    "give an -efi.iso, -efi.img or -efi.qcow2 built with `distrokit build --secure-boot`"
)


class Mode(enum.Enum):
    KERNEL = "kernel+initrd"
    ROOT_IMAGE = "kernel with a root image"
    ISO = "ISO"
    DISK = "disk"


@dataclass(frozen=True)
class BootRequest:
    """What the user forced on the command line (all off: the artefact decides)."""

    iso: bool = False
    kernel: bool = False
    squashfs: bool = False
    uefi: bool = False
    firmware: Path | None = None
    secure_boot: bool = False

    def __post_init__(self) -> None:
        if sum((self.iso, self.kernel, self.squashfs)) > 1:
            raise BadInput("give at most one of --iso, --kernel and --squashfs")
        if self.secure_boot and (self.kernel or self.squashfs):
            raise BadInput(SECURE_BOOT_MEDIA)


@dataclass(frozen=True)
class Boot:
    mode: Mode
    image: Path | None = None  # the ISO, the disk or the root image
    image_format: str = "raw"
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    root_fstype: str = ""
    firmware: Path | None = None  # --fw
    uefi: bool = False  # --uefi or --fw, or a medium with an EFI loader and no BIOS one
    secure_boot: bool = False  # --secure-boot: through firmware that enforces Secure Boot

    def needs_firmware(self, machine: Machine) -> bool:
        """Booted through UEFI: asked for, a medium only UEFI boots, or a medium on a machine with no BIOS."""
        return self.uefi or (not machine.bios and self.mode in (Mode.ISO, Mode.DISK))

    @property
    def drives(self) -> int:
        """Virtio disks this boot attaches before the user's --disk ones."""
        return 1 if self.mode in (Mode.ROOT_IMAGE, Mode.DISK) else 0

    def qemu_args(self, extra_cmdline: str = "", tcg: bool = False, machine: Machine = MACHINES["amd64"]) -> list[str]:
        """The boot's devices and kernel (the firmware is the runner's: it is per instance)."""
        args: list[str] = []
        if not machine.bios and self.mode in (Mode.ISO, Mode.DISK):
            args += self._uefi_medium_args()
        elif self.mode in (Mode.ROOT_IMAGE, Mode.DISK):
            assert self.image is not None
            drive = f"file={self.image},format={self.image_format},if=virtio,index=0,media=disk"
            args += ["-drive", drive + (",readonly=on" if self.mode == Mode.ROOT_IMAGE else "")]
        elif self.mode == Mode.ISO:
            args += ["-cdrom", str(self.image), "-boot", "d"]
        if self.kernel is not None:
            assert self.initrd is not None
            args += ["-kernel", str(self.kernel), "-initrd", str(self.initrd)]
            args += ["-append", self.kernel_cmdline(extra_cmdline, tcg)]
        return args

    def _uefi_medium_args(self) -> list[str]:
        """The medium on virtio (a machine without a PC's IDE), first in the firmware's boot order, so
        the firmware never tries the network first: a SCSI CD-ROM for an ISO, a virtio disk otherwise."""
        if self.mode == Mode.ISO:
            drive = f"file={self.image},format=raw,if=none,id=bootcd,media=cdrom,readonly=on"
            device = [
                "-device",
                "virtio-scsi-pci,id=boot-scsi",
                "-device",
                "scsi-cd,drive=bootcd,bus=boot-scsi.0,bootindex=0",
            ]
            return ["-drive", drive, *device]
        drive = f"file={self.image},format={self.image_format},if=none,id=bootdisk"
        return ["-drive", drive, "-device", "virtio-blk-pci,drive=bootdisk,bootindex=0"]

    def kernel_cmdline(self, extra: str = "", tcg: bool = False) -> str:
        cmdline = self.cmdline
        if self.mode == Mode.ROOT_IMAGE:
            cmdline += f" root={ROOT_DEVICE} rootfstype={self.root_fstype}"
        if "panic=" not in cmdline:
            cmdline += " panic=1"  # with -no-reboot a panic ends QEMU at once instead of hanging until the timeout
        if tcg and "no_timer_check" not in cmdline:
            # Under TCG on a busy host the kernel's IO-APIC timer check can miss its ticks and panic
            # ("IO-APIC + timer doesn't work!"): the timer works, the emulation is only slow.
            cmdline += " no_timer_check"
        if extra:
            cmdline += " " + extra
        return cmdline.strip()


def _sibling(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


def _firmware(request: BootRequest) -> Path | None:
    """--fw, checked; without it the machine's own firmware is taken (see `firmware_code`)."""
    if request.firmware is not None and not request.firmware.is_file():
        raise BadInput(f"UEFI firmware {request.firmware} does not exist: give an existing --fw file")
    return request.firmware


def firmware_code(boot: Boot, machine: Machine) -> Path:
    """The UEFI firmware `boot` runs: --fw, else the machine's own from Debian (checked)."""
    own = machine_firmware(boot, machine)
    firmware = boot.firmware or own.code
    for path in (firmware, own.vars if boot.secure_boot else None):
        if path is not None and not path.is_file():
            raise BadInput(f"UEFI firmware {path} does not exist: install it with `apt-get install {own.package}`")
    return firmware


def machine_firmware(boot: Boot, machine: Machine) -> Firmware:
    """The machine's UEFI firmware for `boot`: its Secure Boot build with keys enrolled for --secure-boot."""
    if not boot.secure_boot:
        return machine.uefi
    if machine.secure_boot is None:
        raise BadInput(f"--secure-boot: distrokit boots Secure Boot guests on amd64 only, not {machine.arch}")
    return machine.secure_boot.firmware


def machine_args(boot: Boot, machine: Machine) -> tuple[str, ...]:
    """The machine and CPU: with --secure-boot, the machine its firmware needs (SMM, a secure flash)."""
    if boot.secure_boot and machine.secure_boot is not None:
        return (*machine.args, *machine.secure_boot.args)
    return machine.args


def _cmdline(prefix: Path) -> str:
    path = _sibling(prefix, "-cmdline")
    return path.read_text().strip() if path.is_file() else "console=ttyS0"


def resolve(path: Path, request: BootRequest = BootRequest()) -> Boot:
    """The boot for `path` (an output prefix or a media file), or BadInput saying what is missing."""
    firmware = _firmware(request)
    if path.is_file() and not request.kernel and not request.squashfs:
        boot = _media_file(path, request, firmware)
    else:
        if path.is_file():
            for suffix, _ in ((".iso", ""), *ROOT_IMAGES):
                if path.name.endswith(suffix):
                    path = path.with_name(path.name[: -len(suffix)])
        boot = _prefix(path, request, firmware)
    asked = request.uefi or firmware is not None or request.secure_boot
    if request.secure_boot and boot.mode not in (Mode.ISO, Mode.DISK):
        raise BadInput(SECURE_BOOT_MEDIA)
    boot = dataclasses.replace(boot, secure_boot=request.secure_boot)
    if boot.mode in (Mode.ISO, Mode.DISK) and boot.image is not None:
        return _medium_firmware(boot, asked)
    return dataclasses.replace(boot, uefi=asked)


def _medium_firmware(boot: Boot, asked: bool) -> Boot:
    """UEFI for a medium whose only loader is an EFI one (an -efi.iso, -efi.img, -efi.qcow2), as the
    artefact says; --uefi on a medium with no EFI loader is refused rather than left to hang."""
    assert boot.image is not None
    loaders = medium_loaders(boot.image)
    if asked and loaders.bios and loaders.efi_arch is None:
        raise BadInput(f"{boot.image} has no EFI loader (EFI/BOOT/BOOT*.EFI), only a BIOS one: boot it without --uefi")
    return dataclasses.replace(boot, uefi=asked or loaders.efi_only)


def _media_file(path: Path, request: BootRequest, firmware: Path | None) -> Boot:
    for suffix, fstype in ROOT_IMAGES:
        if path.name.endswith(suffix) and not request.iso:
            return _root_image(path.with_name(path.name[: -len(suffix)]), path, fstype, firmware)
    if request.iso or path.suffix == ".iso":
        prefix = path.with_name(path.name.removesuffix(".iso"))
        if path.suffix == ".iso" and not _bootable_iso(path) and _sibling(prefix, "-boot-initrd.img").is_file():
            return _root_image(prefix, path, "iso9660", firmware)  # kernel+iso's root, not a boot medium
        return Boot(Mode.ISO, image=path, firmware=firmware)
    image_format = DISK_SUFFIXES.get(path.suffix)
    if image_format is None:
        known = ", ".join([".iso", *DISK_SUFFIXES])
        raise BadInput(f"{path}: not a boot medium distrokit knows ({known}); give an output prefix or use --iso")
    return Boot(Mode.DISK, image=path, image_format=image_format, firmware=firmware)


def _prefix(prefix: Path, request: BootRequest, firmware: Path | None) -> Boot:
    kernel, initrd, boot_initrd = (_sibling(prefix, s) for s in ("-kernel", "-initrd.img", "-boot-initrd.img"))
    iso = _sibling(prefix, ".iso")
    if request.iso:
        if not iso.is_file():
            raise BadInput(f"--iso: {iso} does not exist; build it with -f iso-bios or -f kernel+iso")
        if boot_initrd.is_file() and kernel.is_file() and not _bootable_iso(iso):
            return _root_image(prefix, iso, "iso9660", firmware)
        return Boot(Mode.ISO, image=iso, firmware=firmware)
    if not kernel.is_file():
        raise BadInput(
            f"nothing to boot at {prefix}: {kernel} missing; run `distrokit build` first "
            "(or give a .iso, .img, .raw, .qcow2, .vhd or .vmdk file)"
        )
    images = [(_sibling(prefix, suffix), fstype) for suffix, fstype in ROOT_IMAGES]
    if not request.squashfs and (request.kernel or initrd.is_file()):
        if not initrd.is_file():
            raise BadInput(f"--kernel: {initrd} missing; build with -f kernel+initrd")
        return Boot(Mode.KERNEL, kernel=kernel, initrd=initrd, cmdline=_cmdline(prefix), firmware=firmware)
    for image, fstype in images:
        if image.is_file():
            return _root_image(prefix, image, fstype, firmware)
    if not request.squashfs and iso.is_file() and boot_initrd.is_file():
        return _root_image(prefix, iso, "iso9660", firmware)
    if request.squashfs:
        raise BadInput(f"nothing to boot at {prefix}: no squashfs or erofs image beside {kernel}; build one first")
    raise BadInput(
        f"nothing to boot at {prefix}: {initrd} missing (and no squashfs, erofs or ISO root beside {kernel}); "
        "run `distrokit build` first"
    )


def _root_image(prefix: Path, image: Path, fstype: str, firmware: Path | None) -> Boot:
    boot_initrd = _sibling(prefix, "-boot-initrd.img")
    if not boot_initrd.is_file():
        raise BadInput(f"{image} needs {boot_initrd} to mount it: build again with distrokit")
    return Boot(
        Mode.ROOT_IMAGE,
        image=image,
        kernel=_sibling(prefix, "-kernel"),
        initrd=boot_initrd,
        cmdline=_cmdline(prefix),
        root_fstype=fstype,
        firmware=firmware,
    )


def _bootable_iso(iso: Path) -> bool:
    """An El Torito boot record (sector 17 names it): the ISO boots on its own."""
    with open(iso, "rb") as handle:
        handle.seek(17 * 2048)
        return handle.read(32)[7:30] == b"EL TORITO SPECIFICATION"
