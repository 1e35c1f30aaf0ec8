"""Where the guest's serial console goes: a stream for scripts, the user's terminal, or a log.

On a terminal the console is a real serial line: QEMU's stdio character device puts the terminal
in raw mode, so Ctrl-C and every other key reach the guest (`signal=off`), and its multiplexer
gives the escapes QEMU and LinuxKit users know (Ctrl-A X ends the VM, Ctrl-A H lists them, Ctrl-A
C toggles QEMU's monitor). We save the terminal's settings first and put them back afterwards,
whatever way QEMU ended.
"""

from __future__ import annotations

import enum
import signal
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

from ..errors import BootError
from .processes import running

ESCAPES = "Ctrl-A X ends the VM, Ctrl-A H lists the escapes"
# `distrokit console DIR` (guest/reattach.py) leaves a detached instance running: its Ctrl-A X detaches.
ATTACH_ESCAPES = "Ctrl-A X detaches (the instance keeps running), Ctrl-A Ctrl-A sends Ctrl-A"
CHARDEV_ID = "con0"


class Console(enum.Enum):
    PIPE = "pipe"  # streamed to a callback, with a timeout (scripts, CI)
    TERMINAL = "terminal"  # the user's terminal, as a serial line with QEMU's escapes
    DETACHED = "detached"  # QEMU in the background, the console in the state folder's log


def serial_args(mode: Console, log: Path | None = None, socket: Path | None = None) -> list[str]:
    """QEMU arguments connecting the first serial port, with a copy of all output in `log` if given."""
    logging = f",logfile={log},logappend=on" if log else ""
    if mode is Console.DETACHED:
        if socket is None:
            raise ValueError("a detached console needs a socket in the state folder")
        # A server socket nobody has to wait for: output goes to the log whether or not someone attaches.
        chardev = f"socket,id={CHARDEV_ID},path={socket},server=on,wait=off{logging}"
        return ["-chardev", chardev, "-serial", f"chardev:{CHARDEV_ID}", "-monitor", "none"]
    if mode is Console.TERMINAL:
        chardev = f"stdio,id={CHARDEV_ID},mux=on,signal=off{logging}"
        return ["-chardev", chardev, "-serial", f"chardev:{CHARDEV_ID}", "-mon", f"chardev={CHARDEV_ID},mode=readline"]
    chardev = f"stdio,id={CHARDEV_ID},signal=off{logging}"
    return ["-chardev", chardev, "-serial", f"chardev:{CHARDEV_ID}", "-monitor", "none"]


def attach(command: list[str], terminal: int, timeout: float | None) -> tuple[int, float]:
    """Run QEMU on the terminal `terminal` (a file descriptor) until it ends; return its exit code and seconds.

    Ctrl-C belongs to the guest, so this process ignores SIGINT (and SIGQUIT, SIGTSTP) while QEMU
    runs; QEMU is started first so that it does not inherit the ignored dispositions.
    """
    saved = termios.tcgetattr(terminal)
    started = time.monotonic()
    handlers: dict[signal.Signals, Any] = {}
    try:
        with running(command) as qemu:
            for caught in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
                handlers[caught] = signal.signal(caught, signal.SIG_IGN)
            try:
                code = qemu.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BootError(f"the guest still ran after {timeout:.0f} s (--timeout); it was stopped") from None
    finally:
        termios.tcsetattr(terminal, termios.TCSAFLUSH, saved)
        for number, handler in handlers.items():
            signal.signal(number, handler)
    return code, time.monotonic() - started
