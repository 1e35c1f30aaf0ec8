"""What LinuxKit's kernel has built in and its specs rely on, and its metadata's search for a cidata
config on any block device, booted for real: tests/specs/kernel-metadata.yml, built once and booted
twice (the config ISO on a CD-ROM, then the same kind of ISO attached as a virtio disk). A check in
the guest prints a PASS line per feature and the suite's PASSED line, as LinuxKit's test cases do.
btrfs and xfs, in components/kernel-full only, get a boot of their own (tests/specs/kernel-full-fs.yml).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bootkit import boot_path
from conftest import Built, build

from buildlib.guest.metadata import write_config_iso

SPEC = Path(__file__).resolve().parents[1] / "specs" / "kernel-metadata.yml"
DATA = json.dumps({"check": {"content": "hello from cidata\n"}})
FEATURES = ["scsi", "dm-mod", "loop", "wireguard", "dm-crypt", "metadata"]


@pytest.fixture(scope="module")
def kernel_metadata(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(SPEC, shared_cache, tmp_path_factory.mktemp("out"))


def _passed(console: str, device: str) -> None:
    for feature in FEATURES:
        assert f"check: {feature} PASS" in console, console[-4000:]
    assert f"metadata: userdata from CDROM {device}:" in console  # LinuxKit's provider name, with the device
    assert f"metadata provider: CDROM {device}" in console
    assert "kernel-metadata test suite PASSED" in console


@pytest.mark.boot
def test_kernel_features_and_the_config_iso_on_a_cdrom(kernel_metadata: Built) -> None:
    console = boot_path(kernel_metadata, kernel_metadata.prefix, "--data", DATA, "--networking", "none")
    _passed(console, "/dev/sr0")


@pytest.mark.boot
def test_the_config_iso_attached_as_a_virtio_disk_is_found_by_its_label(kernel_metadata: Built, tmp_path: Path) -> None:
    iso = write_config_iso(DATA.encode(), tmp_path / "data.iso")
    console = boot_path(kernel_metadata, kernel_metadata.prefix, "--disk", f"file={iso}", "--networking", "none")
    assert "metadata: /dev/vda is labelled cidata" in console  # found by its label, not as a CD-ROM
    _passed(console, "/dev/vda")


@pytest.mark.boot
def test_btrfs_and_xfs_load_on_first_mount_with_kernel_full(shared_cache: Path, tmp_path: Path) -> None:
    built = build(SPEC.with_name("kernel-full-fs.yml"), shared_cache, tmp_path)
    console = boot_path(built, built.prefix, "--mem", "1024", "--networking", "none")  # a 23 MB initrd
    assert "check: btrfs PASS" in console and "check: xfs PASS" in console, console[-3000:]
    assert "loaded before its first mount" not in console  # loaded on demand, not at boot
    assert "kernel-full-fs test suite PASSED" in console
