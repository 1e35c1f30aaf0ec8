"""What LinuxKit's kernel has built in and its specs rely on, and its metadata's search for a cidata
config on any block device, booted for real: tests/specs/kernel-metadata.yml, built once and booted
twice (the config ISO on a CD-ROM, then the same kind of ISO attached as a virtio disk). A check in
the guest prints a PASS line per feature and the suite's PASSED line, as LinuxKit's test cases do.
btrfs and xfs (components/kernel-full only) and a FAT config disk share a third (tests/specs/filesystems.yml).
"""

from __future__ import annotations

import json
import shutil
import subprocess
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


def _fat_config(path: Path, data: str) -> Path:
    """A FAT file system labelled CIDATA holding user-data, as other tools make config disks."""
    subprocess.run(["truncate", "-s", "8M", str(path)], check=True)
    subprocess.run(["mkfs.fat", "-n", "CIDATA", str(path)], check=True, capture_output=True)
    user_data = path.with_name("user-data")
    user_data.write_text(data)
    subprocess.run(["mcopy", "-i", str(path), str(user_data), "::user-data"], check=True)
    return path


@pytest.mark.boot
@pytest.mark.skipif(shutil.which("mcopy") is None, reason="needs mtools and dosfstools (scripts/setup.sh)")
def test_btrfs_xfs_on_first_mount_and_a_fat_config_disk(shared_cache: Path, tmp_path: Path) -> None:
    built = build(SPEC.with_name("filesystems.yml"), shared_cache, tmp_path)
    fat = _fat_config(tmp_path / "config.img", json.dumps({"check": {"content": "hello from fat\n"}}))
    console = boot_path(built, built.prefix, "--disk", f"file={fat}", "--mem", "1024", "--networking", "none")
    assert "check: btrfs PASS" in console and "check: xfs PASS" in console, console[-3000:]
    assert "loaded before its first mount" not in console  # loaded on demand, not at boot
    assert "metadata: userdata from CDROM /dev/vda:" in console and "check: metadata-fat PASS" in console
    assert "filesystems test suite PASSED" in console
