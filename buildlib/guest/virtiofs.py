"""Host folders shared with the guest over virtio-fs (`run --virtiofs DIR`), when virtiofsd is installed.

Each folder gets its own virtiofsd, serving it on a unix socket; QEMU connects a vhost-user-fs
device to it, which needs the guest's memory shared with virtiofsd (a memfd backend). The guest
mounts a share by its tag: `mount -t virtiofs virtiofs0 /mnt` (the virtiofs module).
virtiofsd ends by itself when QEMU disconnects.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput, BootError
from ..interrupts import held
from . import processes

CANDIDATES = ("virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd")
SOCKET_WAIT = 10.0


@dataclass(frozen=True)
class Share:
    folder: Path
    tag: str
    socket: Path


def find_virtiofsd() -> str:
    for candidate in CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise BadInput("--virtiofs needs virtiofsd, which is not installed: `apt-get install virtiofsd` (or qemu's)")


def plan(folders: tuple[Path, ...], sockets: Path) -> tuple[Share, ...]:
    """One share per folder, tagged virtiofs0, virtiofs1, ... as LinuxKit's qemu runner tags them."""
    shares = []
    for index, folder in enumerate(folders):
        if not folder.is_dir():
            raise BadInput(f"--virtiofs {folder}: not a folder")
        shares.append(Share(folder.resolve(), f"virtiofs{index}", sockets / f"virtiofs{index}.sock"))
    return tuple(shares)


def qemu_args(shares: tuple[Share, ...], mem: str) -> list[str]:
    if not shares:
        return []
    args = ["-object", f"memory-backend-memfd,id=mem,size={mem},share=on", "-numa", "node,memdev=mem"]
    for index, share in enumerate(shares):
        args += ["-chardev", f"socket,id=vfs{index},path={share.socket}"]
        args += ["-device", f"vhost-user-fs-pci,queue-size=1024,chardev=vfs{index},tag={share.tag}"]
    return args


def start(shares: tuple[Share, ...]) -> list[subprocess.Popen[bytes]]:
    """Start a virtiofsd per share, in its own session (it outlives a detached run), and wait for its socket."""
    if not shares:
        return []
    binary = find_virtiofsd()
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        for share in shares:
            share.socket.parent.mkdir(parents=True, exist_ok=True)
            share.socket.unlink(missing_ok=True)
            command = [binary, f"--socket-path={share.socket}", "-o", f"source={share.folder}", "-o", "cache=auto"]
            with held():  # a SIGTERM meanwhile is taken once the daemon is in the list, so it is stopped
                daemons.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        start_new_session=True,
                    )
                )
            deadline = time.monotonic() + SOCKET_WAIT
            while not share.socket.exists():
                if daemons[-1].poll() is not None or time.monotonic() > deadline:
                    raise BootError(f"virtiofsd did not start for {share.folder}")
                time.sleep(0.05)
    except BaseException:
        stop(daemons)
        raise
    return daemons


def stop(daemons: list[subprocess.Popen[bytes]]) -> None:
    for daemon in daemons:
        processes.stop(daemon)
