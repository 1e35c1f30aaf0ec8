"""buildlib.guest.runner: real QEMU boots (TCG). Few and short: they share the session's minimal build."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built, build

from buildlib.debian.recipes import load_recipe
from buildlib.errors import BadInput, BootError
from buildlib.guest import runner
from buildlib.outputs.compress import Compression

pytestmark = pytest.mark.boot


def test_minimal_boots_reports_and_powers_off(minimal_build: Built) -> None:
    chunks: list[bytes] = []
    result = runner.run(runner.RunOptions(prefix=minimal_build.prefix, timeout=120), on_output=chunks.append)
    console = b"".join(chunks).decode(errors="replace")
    assert 'NAME="distrokit"' in console
    assert "Linux distrokit 6.1." in console and "x86_64" in console
    assert "busybox-static 1:1.35" in console
    assert "linux-image-6.1." in console
    assert "reboot: Power down" in console
    assert result.accel in ("tcg", "kvm")


def test_gzip_initrd_boots_too(minimal_build: Built, tmp_path: Path) -> None:
    built = build(SPECS / "minimal.yml", minimal_build.cache, tmp_path, name="gzipped", compression=Compression.GZIP)
    assert (tmp_path / "gzipped-initrd.img").read_bytes()[:2] == b"\x1f\x8b"
    chunks: list[bytes] = []
    runner.run(runner.RunOptions(prefix=built.prefix, timeout=120), on_output=chunks.append)
    assert b"reboot: Power down" in b"".join(chunks)


def test_kernel_panic_is_reported(minimal_build: Built, tmp_path: Path) -> None:
    spec = tmp_path / "noinit.yml"
    kernel = load_recipe(COMPONENTS / "kernel").ref
    # No init and no modules: the kernel finds nothing to run and panics.
    spec.write_text(f"kernel:\n  image: {kernel}\n  cmdline: console=ttyS0\n  tar: none\n")
    built = build(spec, minimal_build.cache, tmp_path / "out")
    with pytest.raises(BootError, match="panicked"):
        runner.run(runner.RunOptions(prefix=built.prefix, timeout=120))


def test_timeout_stops_the_guest(minimal_build: Built) -> None:
    with pytest.raises(BootError, match="did not power off within 2 s"):
        runner.run(runner.RunOptions(prefix=minimal_build.prefix, timeout=2))


def test_nothing_to_boot_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="distrokit build"):
        runner.run(runner.RunOptions(prefix=tmp_path / "none"))
