"""buildlib.guest.runner: real QEMU boots (TCG). Few and short: they share the session's minimal build."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO, SPECS, Built, build, descendants, process_running

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


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_run_ended_by_a_signal_stops_its_guest(minimal_build: Built, number: signal.Signals) -> None:
    """`kill`, `timeout`, a cancelled CI job: the guest goes with the command, not on without it."""
    command = [sys.executable, "-m", "buildlib.cli", "run", str(minimal_build.prefix)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    distrokit = subprocess.Popen(
        command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while not (qemu := descendants(distrokit.pid)):
        assert distrokit.poll() is None, distrokit.communicate()
        assert time.monotonic() < deadline, "QEMU never started"
        time.sleep(0.02)
    distrokit.send_signal(number)
    _, err = distrokit.communicate(timeout=30)
    assert distrokit.returncode == 128 + number, err
    assert f"terminated ({number.name})" in err.decode()
    assert not any(process_running(pid) for pid in qemu)


def test_nothing_to_boot_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="distrokit build"):
        runner.run(runner.RunOptions(prefix=tmp_path / "none"))
