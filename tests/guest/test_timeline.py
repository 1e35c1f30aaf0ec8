"""buildlib.guest.timeline and the init's shutdown paths: phases from console timestamps, and real boots
that time themselves, reboot and halt through /init (process 1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, SPECS, Built, build

from buildlib.guest import runner, timeline

LINES = [
    (2.00, "[    0.500000] Trying to unpack rootfs image as initramfs..."),
    (2.10, "distrokit-timeline: 1.20 init"),
    (2.30, "[    0.900000] Freeing initrd memory: 2248K"),
    (2.31, "[    1.100000] Run /init as init process"),
    (2.40, "distrokit-timeline: 1.40 kernel-fs"),
    (2.90, "distrokit-timeline: 1.85 booted"),
    (3.00, "[    1.84] reboot: Power down"),
]


def test_phases_cover_the_run_in_order() -> None:
    phases = timeline.phases(LINES, total=3.2)
    names = [phase.name for phase in phases]
    assert names[:2] == [timeline.BEFORE_KERNEL, timeline.KERNEL_START]
    assert names.index("kernel: start /init") < names.index("init: give the root its own mount")
    assert names[-1] == "power-off (QEMU exits)"  # last even though its printk time is a little earlier
    assert phases[1].start == pytest.approx(0.9)  # smallest lag: the init marker at 1.20 arrived at 2.10
    assert sum(phase.seconds for phase in phases) == pytest.approx(3.2)
    assert all(phase.seconds >= 0 for phase in phases)


def test_no_markers_is_one_phase() -> None:
    (phase,) = timeline.phases([(1.0, "hello")], total=2.0)
    assert phase.seconds == 2.0 and "no timeline markers" in phase.name


def test_console_clock_splits_lines_across_chunks() -> None:
    clock = timeline.ConsoleClock()
    for chunk in (b"distrokit-time", b"line: 1.00 init\r\nsecond", b" line\n"):
        clock.feed(chunk)
    assert [line for _, line in clock.lines] == ["distrokit-timeline: 1.00 init", "second line"]


@pytest.mark.boot
def test_run_timeline_prints_the_phases(minimal_build: Built) -> None:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(minimal_build.cache), "run"]
    command += [str(minimal_build.prefix), "--timeline", "--timeout", "300"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=330)
    assert done.returncode == 0, done.stderr
    for phase in ("kernel: unpack the initramfs", "init: load modules", "boot.d/90-report", "power-off"):
        assert phase in done.stdout
    assert "The system is going down NOW!" not in done.stdout  # /init ends the machine, not busybox init


@pytest.mark.boot
@pytest.mark.parametrize(("command", "marker"), [("reboot", b"reboot: Restarting system"), ("halt", b"System halted")])
def test_reboot_and_halt_run_the_shutdown_hooks(
    minimal_build: Built, tmp_path: Path, command: str, marker: bytes
) -> None:
    spec = tmp_path / "specs" / "end.yml"
    spec.parent.mkdir()
    text = (SPECS / "minimal.yml").read_text().replace("      poweroff\n", f"      {command}\n")
    spec.write_text(text.replace("../components", str(REPO / "components")))
    built = build(spec, minimal_build.cache, tmp_path / "out", name=f"end-{command}")
    chunks: list[bytes] = []
    result = runner.run(runner.RunOptions(prefix=built.prefix, timeout=300), on_output=chunks.append)
    console = b"".join(chunks)
    assert b"distrokit: system going down" in console and marker in console
    assert result.halted == (command == "halt")
