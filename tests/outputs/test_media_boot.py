"""Every bootable format boots tests/specs/media.yml to its console line and a clean power-off under
QEMU (TCG), through `distrokit run`, which picks the boot mode from the artefact: BIOS, and UEFI
(OVMF) where the format has it. The disk formats that only re-wrap the BIOS disk (qcow2, VHD, VMDK,
aws) are also `slow`."""

from __future__ import annotations

import pytest
from bootkit import boot_path
from conftest import Built

from buildlib.guest.bootmode import DEFAULT_FIRMWARE

pytestmark = pytest.mark.boot
UEFI = pytest.mark.skipif(not DEFAULT_FIRMWARE.is_file(), reason="needs OVMF (apt-get install ovmf)")


def booted(built: Built, suffix: str, *flags: str, root: str = "rootfs") -> None:
    """An initrd boot keeps its root in the initramfs (rootfs); a root image boots onto an overlay."""
    console = boot_path(built, built.prefix.with_name(built.name + suffix), *flags)
    assert f"media: root is {root}" in console, console[-3000:]
    assert "no suitable video mode" not in console  # GRUB boots the kernel in text mode (serial console)


@pytest.mark.parametrize(
    ("suffix", "flags"),
    [("", ("--squashfs",)), ("-squashfs.img", ()), ("-erofs.img", ()), (".iso", ())],
    ids=["squashfs-prefix", "squashfs", "erofs", "kernel+iso"],
)
def test_root_images_boot_read_only_under_an_overlay(
    media_build: tuple[Built, Built], suffix: str, flags: tuple[str, ...]
) -> None:
    booted(media_build[0], suffix, *flags, root="overlay")


def test_iso_bios(media_build: tuple[Built, Built]) -> None:
    booted(media_build[1], ".iso")


@UEFI
def test_iso_efi_boots_through_uefi_without_asking(media_build: tuple[Built, Built]) -> None:
    booted(media_build[0], "-efi.iso")  # its only loader is an EFI one: the artefact says UEFI


@pytest.mark.parametrize("flags", [(), ("--uefi",)], ids=["bios", "uefi"])
def test_hybrid_iso_boots_both_ways(media_build: tuple[Built, Built], flags: tuple[str, ...]) -> None:
    if flags and not DEFAULT_FIRMWARE.is_file():
        pytest.skip("needs OVMF")
    booted(media_build[0], "-efi-initrd.iso", *flags)


def test_raw_bios(media_build: tuple[Built, Built]) -> None:
    booted(media_build[0], "-bios.img")


@UEFI
def test_raw_efi(media_build: tuple[Built, Built]) -> None:
    booted(media_build[0], "-efi.img", "--fw", str(DEFAULT_FIRMWARE))


@UEFI
@pytest.mark.slow
def test_qcow2_efi(media_build: tuple[Built, Built]) -> None:
    booted(media_build[0], "-efi.qcow2")


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".qcow2", ".vhd", ".vmdk", ".raw"], ids=["qcow2-bios", "vhd", "vmdk", "aws"])
def test_bios_disk_wrappers(media_build: tuple[Built, Built], suffix: str) -> None:
    booted(media_build[0], suffix)


@pytest.mark.slow
def test_dynamic_vhd(media_build: tuple[Built, Built]) -> None:
    booted(media_build[1], ".vhd")
