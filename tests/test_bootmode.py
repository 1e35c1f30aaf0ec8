"""buildlib.bootmode: the boot mode comes from the artefact; flags force it (no guest is booted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.bootmode import Boot, BootRequest, Mode, resolve
from buildlib.errors import BadInput

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
    assert boot.qemu_args()[:2] == ["-bios", str(firmware)]
    with pytest.raises(BadInput, match="give an existing --fw file"):
        resolve(tmp_path / "a.iso", BootRequest(uefi=True, firmware=tmp_path / "missing.fd"))
    assert Boot(Mode.ISO, image=tmp_path / "a.iso").qemu_args()[0] == "-cdrom"


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
