"""A guest's state folder (`run --state DIR`): what one instance keeps between runs, and how it stops.

The folder holds the instance's disks (`--disk size=N` without a file becomes diskN.qcow2 here),
its config ISO, the console log, QEMU's pid file and QMP socket, and `instance.json`: the output it
boots, its boot mode, memory, CPUs, network, ports, disks and whether it had data, so `distrokit run
--state DIR` alone starts the same instance again. A detached QEMU (`--detached`) writes its console
here and serves it on console.sock (`distrokit console DIR`); `--stop` ends it as a user would:
Ctrl-Alt-Del through QMP (busybox init runs the shutdown hooks and reboots, which -no-reboot turns
into QEMU's exit), and only if the guest does not go within the grace period, QEMU's `quit`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, BootError
from ..fsutil import read_json, write_json_atomic

RECORD = "instance.json"
STOP_GRACE = 60.0


@dataclass(frozen=True)
class StateDir:
    path: Path

    @property
    def console_log(self) -> Path:
        return self.path / "console.log"

    @property
    def console_socket(self) -> Path:
        return self.path / "console.sock"

    @property
    def pidfile(self) -> Path:
        return self.path / "qemu.pid"

    @property
    def qmp_socket(self) -> Path:
        return self.path / "qmp.sock"

    @property
    def data_iso(self) -> Path:
        return self.path / "data.iso"

    @property
    def record(self) -> Path:
        return self.path / RECORD

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if len(str(self.qmp_socket)) > 100:  # a unix socket path has at most 107 bytes
            raise BadInput(f"--state {self.path}: the path is too long for QEMU's sockets; use a shorter one")


@dataclass(frozen=True)
class Recorded:
    """What `instance.json` remembers of the last run: everything that makes the instance what it is, so
    `run --state DIR` alone starts it again as it was; options given again replace their part."""

    prefix: str | None = None
    publish: tuple[str, ...] = ()
    disks: tuple[str, ...] = ()
    data: bool = False  # a config ISO (--data/--data-file) was attached: the folder's data.iso is again
    boot: tuple[str, ...] = ()  # the boot flags given: any of "iso", "kernel", "squashfs", "uefi", "secure-boot"
    firmware: str | None = None  # --fw
    arch: str | None = None
    mem: str | None = None
    cpus: int | None = None
    networking: str | None = None


BOOT_FLAGS = ("iso", "kernel", "squashfs", "uefi", "secure-boot")
RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(Recorded))


def recall(state: StateDir) -> Recorded:
    if not state.record.is_file():
        return Recorded()
    try:
        data: dict[str, Any] = read_json(state.record)
        known = {name: data[name] for name in RECORD_FIELDS if data.get(name) is not None}
        for name in ("publish", "disks", "boot"):
            known[name] = tuple(str(item) for item in known.get(name, ()))
        unknown = set(known["boot"]) - set(BOOT_FLAGS)
        if unknown:
            raise ValueError(f"unknown boot flags {', '.join(sorted(unknown))}")
        return Recorded(**known)
    except (OSError, ValueError, TypeError) as error:
        raise BadInput(f"{state.record} is unreadable ({error}): remove it and give the options again") from None


def remember(state: StateDir, recorded: Recorded) -> None:
    write_json_atomic(state.record, dataclasses.asdict(recorded))


def place_disks(texts: tuple[str, ...], state: StateDir) -> tuple[str, ...]:
    """`--disk` values with no file (`size=1G`, as LinuxKit allows with a state folder) get diskN.qcow2 there."""
    placed = []
    for index, text in enumerate(texts):
        first = text.split(",", 1)[0]
        if first.split("=", 1)[0] in ("size", "format"):
            extension = "img" if "format=raw" in text else "qcow2"
            text = f"{state.path / f'disk{index}.{extension}'},{text}"
        placed.append(text)
    return tuple(placed)


def control_args(state: StateDir) -> list[str]:
    """QEMU arguments every run with a state folder gets: a pid file and a QMP socket for `--stop`."""
    return ["-pidfile", str(state.pidfile), "-qmp", f"unix:{state.qmp_socket},server=on,wait=off"]


def running_pid(state: StateDir) -> int | None:
    """The pid of this state folder's QEMU while it runs, else None (a stale pid file is ignored)."""
    try:
        pid = int(state.pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if str(state.pidfile).encode() in cmdline else None


def refuse_if_running(state: StateDir) -> None:
    pid = running_pid(state)
    if pid is not None:
        raise BadInput(f"--state {state.path}: an instance runs there (QEMU pid {pid}); stop it with --stop first")


def start_detached(command: list[str], state: StateDir) -> int:
    """Start QEMU in the background (it daemonizes once the machine is set up); return its pid."""
    with contextlib.suppress(FileNotFoundError):
        state.pidfile.unlink()
    started = subprocess.run([*command, "-daemonize"], stdin=subprocess.DEVNULL, capture_output=True)
    if started.returncode != 0:
        detail = started.stderr.decode(errors="replace").strip()[-500:]
        raise BootError(f"QEMU did not start ({started.returncode}): {detail}")
    pid = running_pid(state)
    if pid is None:
        raise BootError(f"QEMU started but left no running pid in {state.pidfile}; see {state.console_log}")
    return pid


def stop(state: StateDir, grace: float = STOP_GRACE) -> str:
    """Stop the instance: 'clean' if the guest shut down by itself, 'quit' if QEMU had to be told to quit."""
    pid = running_pid(state)
    if pid is None:
        raise BadInput(f"--state {state.path}: no instance runs there (no live QEMU in {state.pidfile.name})")
    keys = [{"type": "qcode", "data": key} for key in ("ctrl", "alt", "delete")]
    with contextlib.suppress(OSError):
        _qmp(state.qmp_socket, {"execute": "send-key", "arguments": {"keys": keys}})
    if _wait_gone(pid, grace):
        how = "clean"
    else:
        with contextlib.suppress(OSError):
            _qmp(state.qmp_socket, {"execute": "quit"})
        if not _wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10)
        how = "quit"
    for leftover in (state.pidfile, state.qmp_socket, state.console_socket):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    return how


def _qmp(path: Path, command: dict[str, Any]) -> dict[str, Any]:
    """One QMP command: read the greeting, negotiate capabilities, send, return the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(10)
        connection.connect(str(path))
        stream = connection.makefile("rwb")
        stream.readline()  # the greeting
        for message in ({"execute": "qmp_capabilities"}, command):
            stream.write(json.dumps(message).encode() + b"\n")
            stream.flush()
            while True:
                line = stream.readline()
                if not line:
                    return {}
                answer: dict[str, Any] = json.loads(line)
                if "event" not in answer:
                    break
        return answer


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        time.sleep(0.2)
    return False
