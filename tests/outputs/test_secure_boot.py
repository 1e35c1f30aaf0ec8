"""`build --secure-boot` and `run --secure-boot`: EFI media that boot through Debian's Microsoft-signed
shim, Debian's signed GRUB and the Debian-signed kernel under OVMF's Secure Boot firmware with
Microsoft's keys enrolled; a kernel changed by one byte is refused before it runs; the lock pins the
loaders' .deb files. tests/specs/secureboot.yml keeps the kernel log, so "Secure boot enabled" shows."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from bootkit import boot_path, distrokit
from conftest import REPO, Built, build, once_per_run

from buildlib.fsutil import sha256_file
from buildlib.guest.machines import MACHINES

SPEC = REPO / "tests" / "specs" / "secureboot.yml"
SECURE = MACHINES["amd64"].secure_boot
FIRMWARE = pytest.mark.skipif(
    SECURE is None or not SECURE.firmware.code.is_file(), reason="needs OVMF's Secure Boot build (apt-get install ovmf)"
)
ESP = "@@1M"  # the EFI disk's system partition starts at 1 MiB
LOADERS = ("shim-signed", "grub-efi-amd64-signed")


@pytest.fixture(scope="session")
def secure_build(request: pytest.FixtureRequest, shared_cache: Path) -> Built:
    def make(out: Path) -> Built:
        return build(SPEC, shared_cache, out, secure_boot=True, formats=("iso-efi", "raw-efi"), size=64 << 20)

    return once_per_run(request, "secureboot", make)


def esp_file(disk: Path, path: str, target: Path) -> Path:
    subprocess.run(["mcopy", "-n", "-i", f"{disk}{ESP}", f"::/{path}", str(target)], check=True)
    return target


def signers(path: Path) -> str:
    done = subprocess.run(["sbverify", "--list", str(path)], capture_output=True, text=True, check=True)
    return done.stdout


@pytest.mark.skipif(shutil.which("sbverify") is None, reason="needs sbverify (apt-get install sbsigntool)")
def test_the_esp_holds_the_signed_chain_and_the_kernel_keeps_its_signature(secure_build: Built, tmp_path: Path) -> None:
    disk = secure_build.prefix.with_name(secure_build.name + "-efi.img")
    shim = esp_file(disk, "EFI/BOOT/BOOTX64.EFI", tmp_path / "shim")
    assert "Microsoft Corporation UEFI CA 2011" in signers(shim)
    grub = esp_file(disk, "EFI/BOOT/grubx64.efi", tmp_path / "grub")
    assert "Debian Secure Boot Signer" in signers(grub) and "grub2" in signers(grub)
    kernel = esp_file(disk, "boot/kernel", tmp_path / "kernel")  # the kernel component's /kernel, as built
    assert "Debian Secure Boot Signer" in signers(kernel) and "linux" in signers(kernel)
    config = esp_file(disk, "EFI/debian/grub.cfg", tmp_path / "grub.cfg").read_text()
    assert "linux /boot/kernel 'console=ttyS0'" in config and config.rstrip().endswith("halt")


@FIRMWARE
def test_efi_iso_boots_with_secure_boot_enforced(secure_build: Built) -> None:
    console = boot_path(secure_build, secure_build.prefix.with_name(secure_build.name + "-efi.iso"), "--secure-boot")
    assert "EFI stub: UEFI Secure Boot is enabled" in console
    assert "secureboot: Secure boot enabled" in console
    assert "secureboot-test: lockdown none [integrity] confidentiality" in console  # locked down by Secure Boot


@FIRMWARE
def test_efi_disk_boots_with_secure_boot_enforced(secure_build: Built) -> None:
    console = boot_path(secure_build, secure_build.prefix.with_name(secure_build.name + "-efi.img"), "--secure-boot")
    assert "secureboot: Secure boot enabled" in console
    assert "secureboot-test: lockdown" in console


@FIRMWARE
def test_a_kernel_changed_by_one_byte_is_refused(secure_build: Built, tmp_path: Path) -> None:
    """shim checks the kernel GRUB hands it against Debian's CA: one flipped byte and it never runs."""
    disk = shutil.copyfile(secure_build.prefix.with_name(secure_build.name + "-efi.img"), tmp_path / "tampered.img")
    kernel = esp_file(disk, "boot/kernel", tmp_path / "kernel")
    data = bytearray(kernel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    kernel.write_bytes(data)
    subprocess.run(["mcopy", "-o", "-n", "-i", f"{disk}{ESP}", str(kernel), "::/boot/kernel"], check=True)
    console = boot_path(secure_build, disk, "--secure-boot")  # the signed config powers off after a refusal
    assert "bad shim signature" in console
    assert "the kernel was not booted (Secure Boot)" in console
    assert "Linux version" not in console and "secureboot-test" not in console


def test_lock_pins_the_loaders_debs_and_keeps_them(secure_build: Built, tmp_path: Path) -> None:
    lock_file = tmp_path / "secureboot.lock"
    cache = secure_build.cache
    done = distrokit(cache, "lock", str(SPEC), "--lock", str(lock_file), "--secure-boot")
    assert done.returncode == 0, done.stderr
    pinned = json.loads(lock_file.read_text())["components"]["secureboot"]["packages"]
    assert sorted(p["name"] for p in pinned) == sorted(LOADERS)
    for package in pinned:  # the store's .debs are the pinned bytes
        assert sha256_file(cache / "debs" / package["filename"]) == "sha256:" + package["sha256"]
    before = lock_file.read_bytes()
    again = distrokit(cache, "lock", str(SPEC), "--lock", str(lock_file))  # no flag: the pin stays
    assert again.returncode == 0 and lock_file.read_bytes() == before, again.stderr
    out = tmp_path / "out"
    locked = ("build", str(SPEC), "--lock", str(lock_file), "--locked", "-f", "raw-efi", "--size", "64M")
    built = distrokit(cache, *locked, "--secure-boot", "--dir", str(out), "--name", secure_build.name)
    assert built.returncode == 0, built.stderr
    assert (out / f"{secure_build.name}-efi.img").read_bytes() == secure_build.prefix.with_name(
        secure_build.name + "-efi.img"
    ).read_bytes()


def test_a_lock_without_the_loaders_names_the_command_that_pins_them(secure_build: Built, tmp_path: Path) -> None:
    lock_file = tmp_path / "plain.lock"
    assert distrokit(secure_build.cache, "lock", str(SPEC), "--lock", str(lock_file)).returncode == 0
    done = distrokit(
        secure_build.cache, "build", str(SPEC), "--lock", str(lock_file), "--locked", "--secure-boot", "-f", "raw-efi",
        "--dir", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.returncode != 0
    assert "component secureboot is not pinned" in done.stderr and "--secure-boot`" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("-f", "kernel+initrd"), "--secure-boot: none of the formats asked for (kernel+initrd) boots through EFI"),
        (("-f", "raw-efi", "--decompress-kernel"), "--secure-boot: the kernel of"),
    ],
    ids=["no-efi-format", "unsigned-kernel"],
)
def test_what_secure_boot_cannot_sign_is_refused(
    secure_build: Built, tmp_path: Path, flags: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "out"
    done = distrokit(secure_build.cache, "build", str(SPEC), "--secure-boot", *flags, "--dir", str(out))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert not out.exists() or not any(out.iterdir())  # nothing half-written
