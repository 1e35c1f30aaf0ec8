"""SIGTERM and SIGHUP as an exception: a command they end unwinds as it does on Ctrl-C.

`kill`, `timeout`, `docker stop` and a cancelled CI job send SIGTERM; a closed terminal sends SIGHUP.
Python's default is to die at once, leaving a build's scratch folders and a boot's QEMU behind. The
CLI turns them into `Terminated` (a KeyboardInterrupt, so every cleanup that Ctrl-C runs runs), raised
in the main thread. First, for them and for Ctrl-C, the programs the command started are asked to end
(`stop_descendants`), and from then on a build's worker threads start no new task (`ending`). A step
that must not be cut between two instructions, such as starting a program whose handle would
otherwise be lost, holds them (`held`) and takes the exception as it ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived."""

    def __init__(self, number: int) -> None:
        super().__init__(signal.Signals(number).name)
        self.number = number


class _State:
    depth = 0  # `held` sections the main thread is in
    pending = 0  # a signal that came during one
    owner = 0  # the process that installed the handlers (a fork of it that has not exec'd yet has them too)
    ending = False  # Ctrl-C, SIGTERM or SIGHUP came: the command is unwinding


def _raise_terminated(number: int, _frame: object) -> None:
    if os.getpid() != _State.owner:  # a child between fork and exec (the `sh` library forks in Python)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)  # dies of it, as it would have without these handlers
        return
    for caught in ENDING_SIGNALS:  # the first one only: a second is ignored while the command unwinds
        signal.signal(caught, signal.SIG_IGN)
    _State.ending = True
    # before the unwinding removes scratch folders: a dpkg-deb still unpacking would make them again
    stop_descendants()
    if _State.depth:
        _State.pending = number
        return
    raise Terminated(number)


def _raise_interrupted(number: int, frame: object) -> None:
    if os.getpid() == _State.owner:
        _State.ending = True
        stop_descendants()  # those of the terminal's process group have had SIGINT too; not the others
    signal.default_int_handler(number, frame)  # type: ignore[arg-type]


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Terminated` in the main thread (once: SIGKILL still ends
    the process at once), and SIGINT KeyboardInterrupt as always; each first asks the programs this
    process started to end. A signal ignored when this began (`nohup`) stays ignored."""
    saved = {number: signal.getsignal(number) for number in (*ENDING_SIGNALS, signal.SIGINT)}
    _State.owner = os.getpid()
    try:
        for number, handler in saved.items():
            if number == signal.SIGINT:
                if handler is signal.default_int_handler:
                    signal.signal(number, _raise_interrupted)
            elif handler is not signal.SIG_IGN:
                signal.signal(number, _raise_terminated)
    except ValueError:  # not the main thread, where alone handlers run: as it was
        yield
        return
    try:
        yield
    finally:
        _State.ending = False
        for number, handler in saved.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)


def ending() -> bool:
    """Whether Ctrl-C, SIGTERM or SIGHUP has come and the command is unwinding: a build's worker threads
    start no new task then (their scratch folders would outlive the command)."""
    return _State.ending


@contextlib.contextmanager
def held() -> Iterator[None]:
    """A SIGTERM or SIGHUP that comes while inside is raised as this ends, not in the middle."""
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if not _State.depth and _State.pending:
            number, _State.pending = _State.pending, 0
            raise Terminated(number)


def stop_descendants() -> None:
    """Ask every program this process started, and what those started, to end (SIGTERM), as a command
    unwinds from Ctrl-C or SIGTERM: buildah running a package's RUN step on a build's worker thread
    would otherwise go on without it. Programs in a session of their own (a detached instance's QEMU,
    virtiofsd) are left alone."""
    session = os.getsid(0)
    for pid in _descendants(os.getpid()):
        with contextlib.suppress(OSError):  # gone meanwhile
            if os.getsid(pid) == session:
                os.kill(pid, signal.SIGTERM)


def _descendants(pid: int) -> list[int]:
    """The processes below `pid`, parents before their children (Linux lists children per thread)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for thread in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{pid}/task/{thread}/children").read_text().split():
                    found += [int(child), *_descendants(int(child))]
    return found
