"""Booting a built system as a user does (`distrokit run` in a child process), shared by the boot tests
of every stage folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO, Built

BOOT_TIMEOUT = 300


def distrokit(cache: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it."""
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def boot_path(built: Built, path: Path, *args: str) -> str:
    """`distrokit run PATH` (an output prefix or a media file) to a clean power-off; the console."""
    done = distrokit(built.cache, "run", str(path), "--timeout", str(BOOT_TIMEOUT), *args, timeout=BOOT_TIMEOUT + 30)
    assert done.returncode == 0, f"distrokit run failed: {done.stderr}\n{done.stdout[-3000:]}"
    assert "guest powered off" in done.stderr
    return done.stdout
