"""The programs a boot starts (QEMU, virtiofsd) end with the command that waits on them."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from typing import Any

from ..interrupts import held

GRACE_SECONDS = 5.0  # for a program asked to stop (SIGTERM) before it is killed


def stop(process: subprocess.Popen[Any], grace: float = GRACE_SECONDS) -> None:
    """Ask `process` to end, kill it if it has not after `grace` seconds, and reap it."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def running(command: list[str], **options: Any) -> Iterator[subprocess.Popen[Any]]:
    """`command` started (subprocess.Popen's `options`), and stopped if the wait for it ends in an
    exception: Ctrl-C, SIGTERM (`kill`, `timeout`, a CI job cancelled) or a bug would otherwise leave a
    guest running that nobody is attached to. A SIGTERM that comes while it starts is taken once its
    handle is known. On the way out its pipes are closed and it is reaped."""
    process = None
    try:
        with held():
            process = subprocess.Popen(command, **options)
        yield process
    except BaseException:
        if process is not None:
            stop(process)
        raise
    finally:
        if process is not None:
            with process:
                pass
