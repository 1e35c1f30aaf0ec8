"""buildlib.guest.bootmode: the boot mode comes from the artefact; flags force it (no guest is booted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.errors import BadInput
from buildlib.guest import bootmode, machines, runner
from buildlib.guest.bootmode import DEFAULT_FIRMWARE, Boot, BootRequest, Mode, resolve

PC, VIRT = machines.MACHINES["amd64"], machines.MACHINES["arm64"]

EL_TORITO = b"\0CD001\x01EL TORITO SPECIFICATION"


def files(folder: Path, *names: str, iso_bootable: bool = False) -> Path:
    for name in names:
        path = folder / name
        if name.endswith(".iso"):
            path.write_bytes(b"\0" * 17 * 2048 + (EL_TORITO if iso_bootable else b"\0CD001\x01") + b"\0" * 2000)
        else:
            path.write_text("console=ttyS0 quiet" if name.endswith("-cmdline") else "x")
    return folder / "out"


def test_prefix_modes(tmp_path: Path) -> None:
    prefix = files(tmp_path, "out-kernel", "out-cmdline", "out-initrd.img", "out-squashfs.img", "out-boot-initrd.img")
    kernel = resolve(prefix)
    assert kernel.mode == Mode.KERNEL and kernel.initrd == tmp_path / "out-initrd.img"
    assert kernel.kernel_cmdline() == "console=ttyS0 quiet panic=1"
    squashfs = resolve(prefix, BootRequest(squashfs=True))
    assert (squashfs.mode, squashfs.image, squashfs.initrd) == (
        Mode.ROOT_IMAGE,
        tmp_path / "out-squashfs.img",
        tmp_path / "out-boot-initrd.img",
    )
    assert "root=/dev/vda rootfstype=squashfs" in squashfs.kernel_cmdline()
    args = squashfs.qemu_args("extra=1")
    assert args[:2] == [
        "-drive",
        f"file={tmp_path / 'out-squashfs.img'},format=raw,if=virtio,index=0,media=disk,readonly=on",
    ]
    assert args[-1].endswith("panic=1 extra=1") and squashfs.drives == 1
    named = resolve(tmp_path / "out-squashfs.img")  # the image itself, though an initrd is there too
    assert named.mode == Mode.ROOT_IMAGE


def test_erofs_and_kernel_iso_prefixes(tmp_path: Path) -> None:
    prefix = files(tmp_path, "out-kernel", "out-cmdline", "out-erofs.img", "out-boot-initrd.img")
    assert resolve(prefix).root_fstype == "erofs"
    (tmp_path / "out-erofs.img").unlink()
    files(tmp_path, "out.iso")
    boot = resolve(prefix)
    assert (boot.mode, boot.root_fstype) == (Mode.ROOT_IMAGE, "iso9660")
    assert resolve(tmp_path / "out.iso").mode == Mode.ROOT_IMAGE  # kernel+iso's ISO has no boot record


def test_media_files(tmp_path: Path) -> None:
    files(tmp_path, "a.iso", iso_bootable=True)
    for name in ("b.img", "c.raw", "d.qcow2", "e.vhd", "f.vmdk"):
        files(tmp_path, name)
    assert resolve(tmp_path / "a.iso").qemu_args() == ["-cdrom", str(tmp_path / "a.iso"), "-boot", "d"]
    formats = {name: resolve(tmp_path / name).image_format for name in ("b.img", "c.raw", "d.qcow2", "e.vhd", "f.vmdk")}
    assert formats == {"b.img": "raw", "c.raw": "raw", "d.qcow2": "qcow2", "e.vhd": "vpc", "f.vmdk": "vmdk"}
    disk = resolve(tmp_path / "d.qcow2")
    assert disk.mode == Mode.DISK and disk.qemu_args()[1].startswith(f"file={tmp_path / 'd.qcow2'},format=qcow2")
    assert resolve(tmp_path / "b.img", BootRequest(iso=True)).mode == Mode.ISO


def test_uefi_and_firmware(tmp_path: Path) -> None:
    files(tmp_path, "a.iso", iso_bootable=True)
    firmware = tmp_path / "CODE.fd"
    firmware.write_bytes(b"fw")
    boot = resolve(tmp_path / "a.iso", BootRequest(firmware=firmware))
    assert boot.uefi and runner.firmware_args(boot, PC, runner.Instance()) == ["-bios", str(firmware)]
    with pytest.raises(BadInput, match="give an existing --fw file"):
        resolve(tmp_path / "a.iso", BootRequest(uefi=True, firmware=tmp_path / "missing.fd"))
    assert Boot(Mode.ISO, image=tmp_path / "a.iso").qemu_args()[0] == "-cdrom"
    assert runner.firmware_args(resolve(tmp_path / "a.iso"), PC, runner.Instance()) == []  # SeaBIOS
    assert runner.firmware_args(resolve(tmp_path / "a.iso", BootRequest(uefi=True)), PC, runner.Instance()) == [
        "-bios",
        str(DEFAULT_FIRMWARE),
    ]


def test_arm64_media_boot_through_aavmf_from_virtio(tmp_path: Path) -> None:
    """virt has no BIOS and no IDE: an ISO or a disk always boots through AAVMF (code read-only, the
    instance's own variable store), from a SCSI CD-ROM or a virtio disk first in the boot order."""
    files(tmp_path, "a.iso", iso_bootable=True)
    iso = resolve(tmp_path / "a.iso")
    args = iso.qemu_args(machine=VIRT)
    assert "-cdrom" not in args and "scsi-cd,drive=bootcd,bus=boot-scsi.0,bootindex=0" in args
    assert f"file={tmp_path / 'a.iso'},format=raw,if=none,id=bootcd,media=cdrom,readonly=on" in args
    files(tmp_path, "d.qcow2")
    disk = resolve(tmp_path / "d.qcow2").qemu_args(machine=VIRT)
    assert disk[:2] == ["-drive", f"file={tmp_path / 'd.qcow2'},format=qcow2,if=none,id=bootdisk"]
    assert disk[2:] == ["-device", "virtio-blk-pci,drive=bootdisk,bootindex=0"]
    state = runner.Instance(state=tmp_path / "state")
    assert runner.firmware_args(iso, VIRT, state) == [
        "-drive",
        f"if=pflash,format=raw,unit=0,file={VIRT.uefi.code},readonly=on",
        "-drive",
        f"if=pflash,format=raw,unit=1,file={tmp_path / 'state' / runner.EFI_VARS}",
    ]
    prefix = files(tmp_path, "out-kernel", "out-cmdline", "out-initrd.img")
    assert runner.firmware_args(resolve(prefix), VIRT, state) == []  # QEMU loads the kernel itself
    assert runner.prepare_firmware(resolve(prefix), VIRT, state) is None
    assert runner.prepare_firmware(iso, VIRT, state) is None  # kept in the state folder
    assert (tmp_path / "state" / runner.EFI_VARS).read_bytes() == VIRT.uefi.vars.read_bytes()  # type: ignore[union-attr]
    passing = runner.prepare_firmware(iso, VIRT, runner.Instance())  # a run's own copy, for the runner to remove
    assert passing is not None and passing.stat().st_size == VIRT.uefi.vars.stat().st_size  # type: ignore[union-attr]
    passing.unlink()


def test_a_medium_names_its_architecture(tmp_path: Path) -> None:
    """The FAT entry of the EFI loader a medium holds chooses the emulator when no kernel is booted."""
    arm64, amd64, neither = tmp_path / "a.img", tmp_path / "b.iso", tmp_path / "c.img"
    arm64.write_bytes(bytes(3 << 20) + b"BOOTAA64EFI " + bytes(100))
    amd64.write_bytes(bytes((1 << 20) - 5) + b"BOOTX64 EFI" + bytes(100))  # across a read's edge
    neither.write_bytes(bytes(100))
    assert [machines.medium_arch(p) for p in (arm64, amd64, neither)] == ["arm64", "amd64", None]
    options = runner.RunOptions(prefix=arm64, networking="none")
    command = runner.qemu_command(options, "tcg")
    assert command[:5] == ["qemu-system-aarch64", "-machine", "virt", "-cpu", "max,pauth-impdef=on"]
    assert any(arg.startswith("if=pflash") for arg in command)
    assert runner.guest_machine(runner.RunOptions(prefix=arm64, arch="amd64")).arch == "amd64"  # --arch wins
    assert runner.guest_machine(runner.RunOptions(prefix=neither)).arch == "amd64"


def test_bad_requests(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="at most one of --iso, --kernel and --squashfs"):
        BootRequest(iso=True, kernel=True)
    with pytest.raises(BadInput, match="nothing to boot at"):
        resolve(tmp_path / "none")
    files(tmp_path, "out-kernel", "out-initrd.img")
    with pytest.raises(BadInput, match="no squashfs or erofs image"):
        resolve(tmp_path / "out", BootRequest(squashfs=True))
    with pytest.raises(BadInput, match="--iso: .* does not exist"):
        resolve(tmp_path / "out", BootRequest(iso=True))
    files(tmp_path, "x.txt")
    with pytest.raises(BadInput, match="not a boot medium"):
        resolve(tmp_path / "x.txt")


def test_a_medium_with_only_an_efi_loader_boots_through_uefi_unasked(tmp_path: Path) -> None:
    """An amd64 -efi.iso, -efi.img or -efi.qcow2 boots through OVMF without --uefi, as arm64 media do; a
    hybrid medium (syslinux and EFI) stays BIOS unless asked; --uefi on a BIOS-only one is one line."""
    efi, hybrid, bios = tmp_path / "x-efi.img", tmp_path / "x-efi-initrd.iso", tmp_path / "x-bios.img"
    efi.write_bytes(bytes(1 << 20) + b"BOOTX64 EFI" + bytes(100))
    hybrid.write_bytes(b"ISOLINUXBIN" + bytes(1 << 20) + b"BOOTX64 EFI")
    bios.write_bytes(bytes(2048) + b"LDLINUX SYS" + bytes(100))
    assert machines.medium_loaders(efi) == machines.Loaders("amd64", bios=False)
    assert [bootmode.resolve(p).uefi for p in (efi, hybrid, bios)] == [True, False, False]
    assert bootmode.resolve(hybrid, bootmode.BootRequest(uefi=True)).uefi
    command = runner.qemu_command(runner.RunOptions(prefix=efi, networking="none"), "tcg")
    assert command[command.index("-bios") + 1] == str(bootmode.DEFAULT_FIRMWARE)
    assert "-bios" not in runner.qemu_command(runner.RunOptions(prefix=bios, networking="none"), "tcg")
    with pytest.raises(BadInput, match="has no EFI loader .* boot it without --uefi"):
        bootmode.resolve(bios, bootmode.BootRequest(uefi=True))


def test_secure_boot_firmware_machine_and_refusals(tmp_path: Path) -> None:
    """--secure-boot: OVMF's secboot code as a read-only flash, this run's copy of the variable store
    with Microsoft's keys, the SMM machine that firmware needs; a kernel QEMU loads itself is refused."""
    iso = tmp_path / "a.iso"
    iso.write_bytes(b"\0" * 4096)
    boot = resolve(iso, BootRequest(secure_boot=True))
    assert boot.secure_boot and boot.uefi and boot.needs_firmware(PC)
    secure = PC.secure_boot
    assert secure is not None
    instance = runner.Instance()
    args = runner.firmware_args(boot, PC, instance)
    assert args[1] == f"if=pflash,format=raw,unit=0,file={secure.firmware.code},readonly=on"
    copy = runner.prepare_firmware(boot, PC, instance)
    try:
        assert copy is not None and args[3] == f"if=pflash,format=raw,unit=1,file={copy}"
        assert secure.firmware.vars is not None and copy.read_bytes() == secure.firmware.vars.read_bytes()
    finally:
        if copy is not None:
            copy.unlink()
    assert bootmode.machine_args(boot, PC) == (
        "-machine",
        "q35,smm=on",
        "-global",
        "driver=cfi.pflash01,property=secure,value=on",
    )
    assert bootmode.machine_args(resolve(iso, BootRequest(uefi=True)), PC) == ()
    prefix = files(tmp_path, "out-kernel", "out-cmdline", "out-initrd.img")
    with pytest.raises(BadInput, match="--secure-boot boots a medium"):
        resolve(prefix, BootRequest(secure_boot=True))
    with pytest.raises(BadInput, match="--secure-boot boots a medium"):
        BootRequest(kernel=True, secure_boot=True)
    with pytest.raises(BadInput, match="amd64 only, not arm64"):
        runner.firmware_args(boot, VIRT, instance)
