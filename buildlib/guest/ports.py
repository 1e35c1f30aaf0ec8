"""Whether a host port `--publish` names is free, and when it is not, who holds it, in one line.

QEMU's own error for a taken port ("Could not set up host forwarding rule") names neither the port
nor the holder, and a detached QEMU gives it only after it has been started: this check comes first.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from ..errors import BadInput
from . import roster

PROC_TABLES = {"tcp": ("/proc/net/tcp", "/proc/net/tcp6"), "udp": ("/proc/net/udp", "/proc/net/udp6")}
TCP_LISTEN = "0A"


def refuse_taken(ports: list[tuple[int, str]]) -> None:
    """Raise one line naming the first of `ports` (host port, "tcp" or "udp") that is in use."""
    for port, protocol in ports:
        if not is_free(port, protocol):
            raise BadInput(f"--publish: port {port}/{protocol} on 127.0.0.1 is in use {holder(port, protocol)}")


def is_free(port: int, protocol: str) -> bool:
    """Bind it as QEMU's user network will: TCP with SO_REUSEADDR (a closed connection's TIME_WAIT does
    not count, a listener does), UDP as it is."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        if protocol == "tcp":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def holder(port: int, protocol: str) -> str:
    """Who holds the port, as far as this user can tell: an instance, a named process, or someone."""
    listed = roster.running_with_port(port, protocol)
    if listed is not None:
        return f"by the instance in {listed.state} (QEMU pid {listed.pid}); stop it with --stop or publish another"
    pid = _pid_holding(_socket_inodes(port, protocol))
    if pid is None:
        return "by another process (one this user cannot see); publish another port"
    command = _command_line(pid)
    state = _state_folder(command)
    if state is not None:
        return f"by the instance in {state} (QEMU pid {pid}); stop it with --stop or publish another"
    name = command[0].rsplit("/", 1)[-1] if command else "?"
    return f"by {name} (pid {pid}); publish another port"


def _socket_inodes(port: int, protocol: str) -> set[str]:
    """The inodes of the sockets bound to `port` (TCP: listening ones) in the kernel's tables."""
    inodes = set()
    for table in PROC_TABLES[protocol]:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and (protocol == "udp" or fields[3] == TCP_LISTEN):
                inodes.add(fields[9])
    return inodes


def _pid_holding(inodes: set[str]) -> int | None:
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:  # another user's process, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return int(pid)
            except OSError:
                continue
    return None


def _command_line(pid: int) -> list[str]:
    try:
        return [
            part.decode(errors="replace") for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part
        ]
    except OSError:
        return []


def _state_folder(command: list[str]) -> Path | None:
    """The state folder of a QEMU started by distrokit: its pid file lies there (`-pidfile DIR/qemu.pid`)."""
    for flag, value in zip(command, command[1:], strict=False):
        if flag == "-pidfile" and value.endswith("/qemu.pid"):
            return Path(value).parent
    return None
