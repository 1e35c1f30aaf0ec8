"""Booting a built system as a user does (`distrokit run` in a child process), shared by the boot tests
of every stage folder."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
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


class Terminal:
    """A command on a new pseudo-terminal, as its controlling terminal: type to it, wait for its output."""

    def __init__(self, command: list[str], cwd: Path = REPO, env: dict[str, str] | None = None) -> None:
        self.master, self.slave = os.openpty()
        self.settings = termios.tcgetattr(self.slave)
        self.seen = b""
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            preexec_fn=self._take_terminal,  # noqa: PLW1509 (setsid and the tty ioctl need it)
        )

    @staticmethod
    def _take_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def expect(self, text: bytes, timeout: float) -> None:
        """Wait for `text` in the output after what earlier calls consumed."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} did not appear within {timeout:.0f} s; the screen:\n{self.screen()}"
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:  # the last process on the terminal is gone
                    assert text in self.seen, f"{text!r} never appeared; the screen:\n{self.screen()}"
        self.seen = self.seen[self.seen.index(text) + len(text) :]

    def screen(self) -> str:
        return self.seen[-3000:].decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self.master)
        os.close(self.slave)
