"""GRUB's EFI modules for an architecture the host cannot install them for (arm64-efi on an amd64 host).

The host's grub-mkimage writes an image for any target from that target's module folder. Debian ships
the folder in grub-efi-ARCH-bin, built for ARCH: its .deb comes from the private apt state of that
architecture (buildlib.debian.apt; the host's dpkg architectures are never changed), at the version of the
host's own GRUB so the tool and the modules match, lands in the store's debs/ beside the components'
.deb files, and is unpacked once into the store's tools/ folder (atomically: a folder renamed into place).
"""

from __future__ import annotations

import fcntl
import subprocess
from pathlib import Path

from ..debian import archive
from ..errors import BuildError
from ..store.images import Store
from .efi import EfiLoader

HOST_GRUB_PACKAGE = "grub-common"  # brings grub-mkimage


def host_grub_version() -> str:
    """The version of the host's grub-mkimage (its Debian package's)."""
    done = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", HOST_GRUB_PACKAGE], capture_output=True, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise BuildError(f"{HOST_GRUB_PACKAGE} is not installed: run `apt-get install {HOST_GRUB_PACKAGE}`")
    return done.stdout.strip()


def module_dir(store: Store, loader: EfiLoader) -> Path:
    """The folder of `loader`'s GRUB modules: the host's own when installed, else unpacked in the store."""
    if loader.module_dir().is_dir():
        return loader.module_dir()
    version = host_grub_version().replace(":", "%3a")  # as apt writes it in file names
    folder = store.root / "tools" / f"grub-{loader.target}-{version}"
    if (folder / "moddep.lst").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / ".lock", "w") as lock:  # the ISO and the disk stages may ask at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "moddep.lst").is_file():
            _unpack(store, loader, _deb(store, loader, version), folder)
    return folder


def _deb(store: Store, loader: EfiLoader, version: str) -> Path:
    """The .deb in the store's debs/ (downloaded once, checked then against apt's sha256), else from apt."""
    kept = store.root / "debs" / f"{loader.package}_{version}_{loader.arch}.deb"
    if kept.is_file():
        return kept
    wanted = f"{loader.package}={version.replace('%3a', ':')}"
    failure = f"{wanted} ({loader.arch}, to match the host's grub-mkimage) is not in the archive"
    (package,) = archive.print_uris([wanted], failure, loader.arch)
    try:
        return archive.fetch_package(store, package, arch=loader.arch)
    except archive.PackageUnavailable as exc:
        raise BuildError(
            f"the archive {exc} ({loader.arch}: GRUB's {loader.target} modules for {loader.filename}): "
            "check the network (or apt's proxy) and build again"
        ) from None


def _unpack(store: Store, loader: EfiLoader, deb: Path, folder: Path) -> None:
    with store.tempdir(f"grub-{loader.target}-") as scratch:
        unpacked = scratch / "deb"
        done = subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], capture_output=True, text=True)
        modules = unpacked / "usr" / "lib" / "grub" / loader.target
        if done.returncode != 0 or not (modules / "moddep.lst").is_file():
            raise BuildError(f"{deb} holds no GRUB {loader.target} modules: {done.stderr.strip()[-300:]}")
        try:
            modules.rename(folder)
        except OSError:  # another process (another store lock) unpacked it first
            if not (folder / "moddep.lst").is_file():
                raise
