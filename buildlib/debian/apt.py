"""apt for any Debian architecture: a private state per architecture, the host's untouched.

Packages of another architecture come from a private apt state (its own package lists, cache and an
empty status file) and the options that make apt think it runs there (`APT::Architecture`). The host's
dpkg architectures are never changed and nothing is installed: apt only reads the archive's index and
downloads .deb files, which `dpkg-deb -x` unpacks whatever their architecture.
"""

from __future__ import annotations

import atexit
import fcntl
import functools
import os
import shutil
import tempfile
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
    """The apt-get/apt-cache options that make apt answer for `arch` (the host's own lists for the host's
    architecture); the private package lists are fetched on first use."""
    arch = normalise(arch)
    if arch == host_arch():
        return _binary_caches(str(_arch_folder(arch) / "cache"))
    return _foreign_options(arch, str(_arch_folder(arch)))


def bare_system_options(arch: str) -> list[str]:
    """`apt_options` for a system with nothing installed, so apt's resolver asks for every dependency: an
    empty status file and an empty download folder (apt would not name a .deb already in it) of our own."""
    return [*apt_options(arch), *_bare_options(str(_arch_folder(normalise(arch)) / "bare"))]


def _arch_folder(arch: str) -> Path:
    """The state folder of a (normalised) architecture: `host` for the host's own, whose lists are the system's."""
    return state_dir() / ("host" if arch == host_arch() else arch)


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
        *_binary_caches(f"{root}/cache"),
    ]
    _ensure_lists(root, options)
    return options


@functools.cache
def _binary_caches(folder: str) -> list[str]:
    """apt's binary caches of the package lists, in a folder of ours. Debian's container images switch
    them off (docker-clean sets both to ""), and then every apt call parses all the lists again: 0.8 s
    here, two calls for each new component of a spec. apt checks them against the lists and the status file
    and writes them whole (a temporary file renamed), so parallel builds share them safely. Without a
    writable folder apt goes on as configured."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError:
        return []
    return [f"-oDir::Cache::pkgcache={folder}/pkgcache.bin", f"-oDir::Cache::srcpkgcache={folder}/srcpkgcache.bin"]


@functools.cache
def _bare_options(folder: str) -> list[str]:
    # its own pkgcache: the status file is part of what apt checks, so sharing one with the host's status
    # would make every call write the other's again
    try:
        root = _empty_system(Path(folder))
        cache = [f"-oDir::Cache::pkgcache={root}/pkgcache.bin"]
    except OSError:  # no writable state folder: a private one for this process, and no binary cache
        root = _empty_system(Path(tempfile.mkdtemp(prefix="distrokit-apt-")))
        atexit.register(shutil.rmtree, root, True)
        cache = []
    return [f"-oDir::State::status={root}/status", f"-oDir::Cache::archives={root}/archives", *cache]


def _empty_system(root: Path) -> Path:
    """`root` holding an empty status file and an empty download folder."""
    (root / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    return root


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
    """Fetch a foreign architecture's package lists again (`pkg build --update`); the host's own lists
    are the host's to update, not ours."""
    if normalise(arch) != host_arch():
        update(apt_options(arch))
