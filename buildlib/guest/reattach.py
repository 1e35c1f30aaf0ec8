"""`distrokit console DIR`: the console of an instance running in the background, here again.

A detached QEMU serves its serial line on DIR/console.sock (and logs it to DIR/console.log whether or
not anyone is connected). Attaching connects to that socket: on a terminal, in raw mode, so every key
(Ctrl-C too) reaches the guest; Ctrl-A X detaches and leaves the instance running (QEMU's Ctrl-A X
would end it: a detached instance ends with `run --stop`), Ctrl-A Ctrl-A sends one Ctrl-A. From a
pipe the bytes pass as they are, and the end of the input ends only the typing, not the output.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import termios
import tty
from collections.abc import Callable, Iterator

from ..errors import BadInput
from . import instance

ESCAPE = b"\x01"  # Ctrl-A, as QEMU's multiplexer and `linuxkit run`
DETACH_KEYS = (b"x", b"X")


def connect(state: instance.StateDir) -> socket.socket:
    """The console socket of the instance running in `state`; one line when there is none."""
    if instance.running_pid(state) is None:
        raise BadInput(f"{state.path}: no instance runs there (start it with `distrokit run --state {state.path}`)")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(state.console_socket))
    except OSError as error:
        connection.close()
        raise BadInput(
            f"{state.console_socket}: cannot connect ({error.strerror}); the instance was not started with "
            "--detached, so its console is where it was started"
        ) from None
    return connection


def attach(connection: socket.socket, typing: int, on_output: Callable[[bytes], None], terminal: bool) -> str:
    """Pass the console both ways until the guest's QEMU ends ("ended") or the user detaches ("detached")."""
    with contextlib.ExitStack() as stack:
        if terminal:
            stack.enter_context(_raw(typing))
        selector = selectors.DefaultSelector()
        selector.register(connection, selectors.EVENT_READ, "guest")
        selector.register(typing, selectors.EVENT_READ, "user")
        keys = Keys(terminal)
        while True:
            for key, _ in selector.select():
                if key.data == "guest":
                    chunk = connection.recv(65536)
                    if not chunk:
                        return "ended"
                    on_output(chunk)
                    continue
                typed = os.read(typing, 1024)
                if not typed:  # the input ended: keep showing the console
                    selector.unregister(typing)
                    continue
                send, detach = keys.feed(typed)
                connection.sendall(send)
                if detach:
                    return "detached"


class Keys:
    """The typed keys with the escapes taken out (on a terminal only): what to send, and whether to detach."""

    def __init__(self, escapes: bool) -> None:
        self.escapes = escapes
        self.pending = False  # Ctrl-A was the last key

    def feed(self, typed: bytes) -> tuple[bytes, bool]:
        if not self.escapes:
            return typed, False
        send = bytearray()
        for value in typed:
            key = bytes([value])
            if self.pending:
                self.pending = False
                if key in DETACH_KEYS:
                    return bytes(send), True
                send += key if key == ESCAPE else ESCAPE + key
            elif key == ESCAPE:
                self.pending = True
            else:
                send += key
        return bytes(send), False


@contextlib.contextmanager
def _raw(terminal: int) -> Iterator[None]:
    saved = termios.tcgetattr(terminal)
    tty.setraw(terminal, termios.TCSANOW)  # not TCSAFLUSH: keys typed before the attach still go
    try:
        yield
    finally:
        termios.tcsetattr(terminal, termios.TCSAFLUSH, saved)
