"""buildlib.guest.ports: a taken --publish port is one line naming who holds it (the instance case is
booted in test_guest.py)."""

from __future__ import annotations

import os
import socket

import pytest

from buildlib.errors import BadInput
from buildlib.guest import ports


def test_a_port_another_process_listens_on_is_refused_naming_it() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not ports.is_free(port, "tcp")
        with pytest.raises(BadInput) as refused:
            ports.refuse_taken([(port, "tcp")])
    message = str(refused.value)
    assert message.startswith(f"--publish: port {port}/tcp on 127.0.0.1 is in use by python")
    assert f"(pid {os.getpid()})" in message and "\n" not in message
    assert ports.is_free(port, "tcp")  # closed: free again (a TIME_WAIT would not count either)


def test_udp_ports_are_told_apart_from_tcp() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bound:
        bound.bind(("127.0.0.1", 0))
        port = bound.getsockname()[1]
        assert not ports.is_free(port, "udp")
        with pytest.raises(BadInput, match=rf"port {port}/udp .*\(pid {os.getpid()}\)"):
            ports.refuse_taken([(port, "tcp"), (port, "udp")])
