"""`run --disk file=PATH` without format=, as LinuxKit users attach a raw image or an ISO: the format is
read from the file. One boot: both disks read back inside the guest."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from bootkit import boot_path
from conftest import build

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.mark.boot
def test_a_raw_image_and_an_iso_attach_without_format(shared_cache: Path, tmp_path: Path) -> None:
    built = build(TEST_SPECS / "probed-disks.yml", shared_cache, tmp_path)
    raw, iso = tmp_path / "data.raw", tmp_path / "data.iso"
    raw.write_bytes(b"raw-disk-ok!" + bytes(1024 * 1024))
    subprocess.run(["xorriso", "-as", "mkisofs", "-o", str(iso), str(raw)], check=True, capture_output=True)
    console = boot_path(built, built.prefix, "--disk", f"file={raw}", "--disk", f"file={iso}", "--networking", "none")
    assert "PASS: raw disk" in console and "PASS: iso disk" in console, console[-3000:]
    assert raw.read_bytes()[:12] == b"raw-disk-ok!", "the raw image is attached as it is, not rewritten"
