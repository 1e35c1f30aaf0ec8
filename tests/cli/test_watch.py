"""buildlib.cli.watch and `distrokit graph`: a build you can watch, and the task graph as DOT."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SPECS

from buildlib import cli


def run_in_pty(argv: list[str], cwd: Path, timeout: float = 600.0) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal as its stdout and stderr, as a user at a terminal would."""
    master, slave = pty.openpty()
    env = dict(os.environ, TERM="xterm", COLUMNS="120")
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        return process.wait(timeout=timeout), b"".join(chunks).decode(errors="replace")
    finally:
        os.close(master)


def distrokit(*args: str) -> list[str]:
    return [sys.executable, "-m", "buildlib.cli", *args]


def test_a_terminal_shows_task_counts_and_the_slowest_tasks(minimal_build, tmp_path: Path) -> None:
    argv = ["--cache", str(minimal_build.cache), "build", str(SPECS / "minimal.yml"), "--dir", str(tmp_path)]
    # gzip: the parts run again (another compression), the images are up to date
    code, screen = run_in_pty(distrokit(*argv, "--name", "watched", "--compression", "gzip"), tmp_path)
    assert code == 0, screen
    assert "tasks 11/11 done (5 ran, 6 up to date)" in screen  # 5: three parts, the boot files, the format
    assert "slowest tasks:" in screen and "part:watched/kernel" in screen.split("slowest tasks:")[1]
    assert "\x1b[" in screen  # drawn as a live view, not plain lines


def test_a_pipe_gets_plain_lines_and_quiet_gets_none(minimal_build, tmp_path: Path, capsys) -> None:
    argv = ["--cache", str(minimal_build.cache), "build", str(SPECS / "minimal.yml"), "--dir", str(tmp_path)]
    assert cli.main([*argv, "--name", "piped", "--compression", "none"]) == 0
    err = capsys.readouterr().err
    assert "ran output:piped/kernel+initrd (" in err and "tasks 11/11 done" in err and "\x1b[" not in err
    assert cli.main([*argv, "--name", "piped", "--compression", "none", "-q"]) == 0
    assert capsys.readouterr().err == ""


def test_graph_is_dot_with_what_would_run_marked(minimal_build, tmp_path: Path, capsys) -> None:
    argv = ["--cache", str(minimal_build.cache), "graph", str(SPECS / "minimal.yml"), "--dir", str(tmp_path)]
    assert cli.main([*argv, "--name", "never"]) == 0
    text = capsys.readouterr().out
    dot = shutil.which("dot")
    assert dot is not None, "graphviz is installed by scripts/setup.sh"
    canon = subprocess.run([dot, "-Tcanon"], input=text, capture_output=True, text=True, check=True).stdout
    assert '"part:never/init" -> "output:never/kernel+initrd"' in canon
    assert '"output:never/kernel+initrd" [style=filled' in text and 'tooltip="will run"' in text
    assert '"component:init" [color=' in text  # up to date: not filled
    assert cli.main([*argv, "--name", "never", "-o", str(tmp_path / "graph.svg")]) == 0
    assert (tmp_path / "graph.svg").read_text().lstrip().startswith("<?xml")


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m buildlib.cli` in a child finds the package from any folder."""
    root = str(SPECS.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("DISTROKIT_COMPONENTS", str(SPECS.parent / "components"))
