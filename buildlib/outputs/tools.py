"""The Debian tools the media formats drive, run so their bytes depend only on their inputs.

Every tool runs with TZ=UTC (FAT and ISO times are local times), LC_ALL=C, SOURCE_DATE_EPOCH set to the
build epoch and umask 022, so the host's settings never reach an image. Ids the tools would draw at
random (FAT serials, GUIDs, VHD and VMDK ids) are derived from the content key instead.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import BadInput, BuildError

# The Debian package that brings each tool (scripts/setup.sh installs them all).
PACKAGES = {
    "xorriso": "xorriso",
    "mkfs.vfat": "dosfstools",
    "mmd": "mtools",
    "mcopy": "mtools",
    "syslinux": "syslinux",
    "grub-mkimage": "grub-efi-amd64-bin",
    "sqfstar": "squashfs-tools",
    "mkfs.erofs": "erofs-utils",
    "qemu-img": "qemu-utils",
    "fakeroot": "fakeroot",
    "tar": "tar",
}
SBIN = ("/usr/sbin", "/sbin")


def tool(name: str) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        package = PACKAGES.get(name, name)
        raise BadInput(f"{name} is not installed: run `apt-get install {package}` (scripts/setup.sh does)")
    return found


def tool_env(epoch: int, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment every tool runs in; an `extra` value of None removes that variable."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin") + ":/usr/sbin:/sbin",
        "TZ": "UTC",
        "LC_ALL": "C",
        "SOURCE_DATE_EPOCH": str(epoch),
        "HOME": os.environ.get("HOME", "/"),
        "MTOOLS_SKIP_CHECK": "1",
    }
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_tool(
    args: Sequence[str],
    epoch: int,
    *,
    stdin: int | None = None,
    input_bytes: bytes | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
) -> bytes:
    """Run a tool (its name resolved on PATH and in sbin); a failure is a BuildError with its stderr."""
    command = [tool(args[0]), *args[1:]]
    done = subprocess.run(
        command,
        stdin=stdin,
        input=input_bytes,
        capture_output=True,
        cwd=cwd,
        env=tool_env(epoch, env),
        umask=0o022,  # in the child only: the build's threads share the parent's umask
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).decode(errors="replace").strip()[-800:]
        raise BuildError(f"{args[0]} failed (exit {done.returncode}): {detail}")
    return done.stdout


def derived_bytes(key: str, label: str, count: int) -> bytes:
    """`count` bytes that depend only on the content key and what they are for."""
    return hashlib.sha256(f"{label}\0{key}".encode()).digest()[:count]


def derived_uuid(key: str, label: str) -> uuid.UUID:
    """A version-4-shaped UUID from the content key (a GPT GUID, a VHD id)."""
    return uuid.UUID(bytes=derived_bytes(key, label, 16), version=4)


def derived_serial(key: str, label: str) -> str:
    """Eight hex digits (a FAT volume serial, an MBR disk signature)."""
    return derived_bytes(key, label, 4).hex()


def iso_date(epoch: int) -> str:
    """The build epoch as xorriso's YYYYMMDDhhmmsscc (UTC)."""
    import time

    return time.strftime("%Y%m%d%H%M%S00", time.gmtime(epoch))
