"""GRUB's EFI modules for an architecture the host cannot install them for (arm64-efi on an amd64 host).

The host's grub-mkimage writes an image for any target from that target's module folder. Debian ships
the folder in grub-efi-ARCH-bin, built for ARCH: its .deb comes from the private apt state of that
architecture (buildlib.debarch; the host's dpkg architectures are never changed), at the version of the
host's own GRUB so the tool and the modules match, lands in the store's debs/ beside the components'
.deb files, and is unpacked once into the store's tools/ folder (atomically: a folder renamed into place).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from . import components
from .errors import BuildError
from .images import Store
from .outputs.efi import EfiLoader

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
    version = host_grub_version()
    folder = store.root / "tools" / f"grub-{loader.target}-{version.replace(':', '%3a')}"
    if (folder / "moddep.lst").is_file():
        return folder
    wanted = f"{loader.package}={version}"
    failure = f"{loader.package} {version} ({loader.arch}, to match the host's grub-mkimage) is not in the archive"
    (package,) = components.print_uris([wanted], failure, loader.arch)
    deb = components.fetch_package(store, package, arch=loader.arch)
    with store.tempdir(f"grub-{loader.target}-") as scratch:
        unpacked = scratch / "deb"
        done = subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], capture_output=True, text=True)
        modules = unpacked / "usr" / "lib" / "grub" / loader.target
        if done.returncode != 0 or not (modules / "moddep.lst").is_file():
            raise BuildError(f"{deb} holds no GRUB {loader.target} modules: {done.stderr.strip()[-300:]}")
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            modules.rename(folder)
        except OSError:  # another build unpacked it first
            if not (folder / "moddep.lst").is_file():
                raise
            shutil.rmtree(modules, ignore_errors=True)
    return folder
