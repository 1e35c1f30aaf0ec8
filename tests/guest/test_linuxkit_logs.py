"""Logs as LinuxKit's memlogd/logwrite keep them, the kernel log as its kmsg package gives it and binfmt
with every emulator, checked as LinuxKit's cases 012_logwrite, 011_kmsg and 002_binfmt check them (a
spec, a check inside the guest, PASS lines): tests/specs/linuxkit-logs.yml, one build, one boot."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from bootkit import boot_path
from conftest import COMPONENTS, build

LOGWRITE = COMPONENTS / "logwrite" / "logwrite"
needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox-static")
SPEC = Path(__file__).resolve().parents[1] / "specs" / "linuxkit-logs.yml"
# In the order the guest prints them: the onboot check's, then the check-the-logs service's.
CHECKS = [
    "binfmt-every-emulator",
    "logwrite-rotated",
    "logwrite-max-log-files",
    "logwrite-no-line-lost",
    "stderr-in-name-log",
    "kmsg-kernel-line",
]


@pytest.mark.boot
def test_logs_kmsg_and_binfmt_as_linuxkit_cases_check_them(shared_cache: Path, tmp_path: Path) -> None:
    built = build(SPEC, shared_cache, tmp_path)
    console = boot_path(built, built.prefix, "--networking", "none", "--mem", "2048")
    results = re.findall(r"(PASS|FAIL): (\S+)", console)
    failures = "\n".join(
        line for line in console.splitlines() if "FAIL" in line or "missing" in line or "binfmt" in line
    )
    assert results == [("PASS", name) for name in CHECKS], failures + "\n" + console[-4000:]


def _wait_for_rotation(log: Path, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while log.exists():
        assert time.monotonic() < deadline, f"{log.name} was not rotated"
        time.sleep(0.05)


@needs_busybox
def test_logwrite_rotates_by_size_under_linuxkits_names(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    flags = ["-log-dir", str(tmp_path), "-max-log-size", "1024", "-max-log-files=2"]
    rotator = subprocess.Popen(["busybox", "sh", str(LOGWRITE), *flags], stdout=subprocess.PIPE)
    try:
        for batch in "abc":
            log.write_text(batch * 1025)  # one byte over the size
            _wait_for_rotation(log)
            assert (tmp_path / "svc.log.0").read_text() == batch * 1025
            time.sleep(0.6)  # two more looks: nothing more moves
        assert (tmp_path / "svc.log.1").read_text() == "b" * 1025  # "a", the oldest, went
        assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.log.0", "svc.log.1"]
        small = tmp_path / "other.out.log"
        small.write_text("x" * 1024)  # at the size, not over it
        time.sleep(0.6)
        assert small.exists() and not (tmp_path / "other.out.log.0").exists()
    finally:
        rotator.terminate()  # TERM ends it (as at shutdown)
        assert rotator.wait(timeout=5) == 0


@needs_busybox
@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-max-log-size", "1M"], "logwrite: max-log-size takes a number, not '1M'"),
        (["-max-log-files", "0"], "logwrite: -max-log-files must be 1 or more"),
        (["-verbose", "1"], "logwrite: unknown flag -verbose"),
        (["-log-dir"], "logwrite: -log-dir needs a value"),
    ],
)
def test_logwrite_refuses_bad_flags_in_one_line(flags: list[str], message: str) -> None:
    done = subprocess.run(["busybox", "sh", str(LOGWRITE), *flags], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert done.stdout.startswith(message) and done.stdout.count("\n") == 1, done.stdout
