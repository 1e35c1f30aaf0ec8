"""buildlib.outputs.grub_modules: GRUB's arm64-efi modules from Debian's arm64 .deb, at the host GRUB's version."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from buildlib.debian import archive
from buildlib.errors import BuildError
from buildlib.outputs import grub_modules
from buildlib.outputs.efi import EFI_LOADERS
from buildlib.store.images import Store

pytestmark = pytest.mark.arm64


def test_an_archive_out_of_reach_is_one_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader = EFI_LOADERS["arm64"]
    version = grub_modules.host_grub_version()
    archive.print_uris([f"{loader.package}={version}"], "not in the archive", loader.arch)  # apt's index, once
    with socket.socket() as dead:  # a port nothing listens on: the download fails at once
        dead.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    monkeypatch.setenv("http_proxy", proxy)
    store = Store(tmp_path / "cache", "arm64")
    with pytest.raises(BuildError) as caught:
        grub_modules.module_dir(store, loader)
    message = str(caught.value)
    assert "\n" not in message and f"{loader.package} {version}" in message and "check the network" in message
    assert not list((tmp_path / "cache").glob("debs/*.deb")) and not list((tmp_path / "cache").glob("tools/grub-*"))
