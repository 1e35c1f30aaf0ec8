"""The code stays as the house style asks: ruff (lint and format) and mypy clean, checked in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINTED = ["buildlib", "tests", "benchmarks", "examples", "dodo.py", "setup.py"]


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", [("ruff", "check"), ("ruff", "format", "--check")], ids=["lint", "format"])
def test_ruff(command: tuple[str, ...]) -> None:
    done = _run(*command, *[p for p in LINTED if (REPO / p).exists()])
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy() -> None:
    done = _run("mypy", "buildlib", "benchmarks")  # benchmarks too: no test runs them, the types keep them whole
    assert done.returncode == 0, done.stdout + done.stderr
