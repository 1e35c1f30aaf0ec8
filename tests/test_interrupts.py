"""buildlib.interrupts: SIGTERM and SIGHUP become `Terminated` in the main thread, once, and wait out `held`."""

from __future__ import annotations

import os
import signal
import time

import pytest

from buildlib.interrupts import Terminated, ending, held, terminated_as_interrupted


def test_sigterm_is_raised_where_the_main_thread_is_and_only_once() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with terminated_as_interrupted():
        with pytest.raises(Terminated) as raised:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)  # the handler runs at once and raises: this never ends normally
        assert raised.value.number == signal.SIGTERM
        assert isinstance(raised.value, KeyboardInterrupt)  # every cleanup Ctrl-C runs runs
        assert ending()  # a build's worker threads take no new task now
        os.kill(os.getpid(), signal.SIGTERM)  # a second one, while the command unwinds: ignored
    assert signal.getsignal(signal.SIGTERM) == before
    assert not ending()  # the next command in this process (a test, a tool) runs its tasks


def test_a_signal_inside_held_is_raised_as_it_ends() -> None:
    reached = []
    with terminated_as_interrupted(), pytest.raises(Terminated) as raised:
        with held():
            os.kill(os.getpid(), signal.SIGHUP)
            reached.append("after the signal")
        reached.append("after held")
    assert reached == ["after the signal"] and raised.value.number == signal.SIGHUP


def test_a_signal_ignored_before_stays_ignored() -> None:
    """`nohup distrokit build ...`: the terminal going away must not end the build."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with terminated_as_interrupted():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_outside_the_main_thread_nothing_changes() -> None:
    """`cli.main` called from a thread (a test, a tool embedding distrokit) runs without the handlers."""
    import threading

    before, seen = signal.getsignal(signal.SIGTERM), []

    def run() -> None:
        with terminated_as_interrupted():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before] and signal.getsignal(signal.SIGTERM) == before


def test_a_fork_that_has_not_exec_d_yet_dies_of_sigterm_as_before() -> None:
    """The `sh` library forks and runs Python before it execs: a SIGTERM there (distrokit stopping its
    children) must end that child as the default action does, not raise Terminated inside it, where
    it unwound a copy of the build (and hung it, waiting for that child)."""
    with terminated_as_interrupted():
        child = os.fork()
        if child == 0:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
                os._exit(3)  # the signal did not end it
            except BaseException:
                os._exit(4)  # it raised in the child
        _, status = os.waitpid(child, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, status
