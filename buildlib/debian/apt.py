"""apt for any Debian architecture: a private state per architecture, the host's untouched.

Packages of another architecture come from a private apt state (its own package lists, cache and an
empty status file) and the options that make apt think it runs there (`APT::Architecture`). The host's
dpkg architectures are never changed and nothing is installed: apt only reads the archive's index and
downloads .deb files, which `dpkg-deb -x` unpacks whatever their architecture.
"""

from __future__ import annotations

import fcntl
import functools
import os
from pathlib import Path

from ..arches import host_arch, normalise
from ..errors import ComponentError


def state_dir() -> Path:
    """Where the private apt states live: outside the store (like the host's /var/lib/apt/lists, it is an
    index of the archive, not build content), shared by every store on the machine."""
    configured = os.environ.get("DISTROKIT_APT_STATE")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distrokit" / "apt"


def apt_options(arch: str) -> list[str]:
    """The apt-get/apt-cache options that make apt answer for `arch` (none for the host's own); the
    private package lists are fetched on first use."""
    arch = normalise(arch)
    if arch == host_arch():
        return []
    return _foreign_options(arch, str(state_dir() / arch))


@functools.cache
def _foreign_options(arch: str, folder: str) -> list[str]:
    root = Path(folder)
    options = [
        f"-oAPT::Architecture={arch}",
        f"-oAPT::Architectures::={arch}",
        f"-oDir::State::Lists={root}/lists",
        f"-oDir::State::status={root}/status",
        f"-oDir::Cache={root}/cache",
        "-oAPT::Sandbox::User=root",
    ]
    _ensure_lists(root, options)
    return options


def _ensure_lists(root: Path, options: list[str]) -> None:
    """`apt-get update` into the private state once (under a lock, so parallel builds share one update)."""
    (root / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    with open(root / ".update-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "updated").is_file():
            return
        update(options)
        (root / "updated").touch()


def update(options: list[str]) -> None:
    import sh

    try:
        sh.Command("apt-get")(*options, "-qq", "update")
    except sh.ErrorReturnCode as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise ComponentError(
            f"apt could not fetch the package lists for {options[0].split('=', 1)[1]}: "
            f"{detail[-1] if detail else exc} (check /etc/apt/sources.list and the network)"
        ) from exc


def refresh(arch: str) -> None:
    """Fetch a foreign architecture's package lists again (`pkg build --update`)."""
    options = apt_options(arch)
    if options:
        update(options)
