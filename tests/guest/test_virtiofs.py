"""buildlib.guest.virtiofs: a host folder shared with a real guest, or a clear message without virtiofsd."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Built, build

from buildlib.errors import BadInput
from buildlib.guest import runner, virtiofs

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"


def test_without_virtiofsd_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(virtiofs, "CANDIDATES", (str(tmp_path / "no-virtiofsd"),))
    with pytest.raises(BadInput, match="--virtiofs needs virtiofsd.*apt-get install virtiofsd"):
        runner.instance_args(runner.Instance(virtiofs=(tmp_path,)))


def test_a_share_is_a_folder_with_a_tag(tmp_path: Path) -> None:
    (share,) = virtiofs.plan((tmp_path,), tmp_path / "sockets")
    assert share.tag == "virtiofs0" and share.socket == tmp_path / "sockets" / "virtiofs0.sock"
    args = virtiofs.qemu_args((share,), "256M")
    assert "memory-backend-memfd,id=mem,size=256M,share=on" in args  # vhost-user needs shared memory
    assert "vhost-user-fs-pci,queue-size=1024,chardev=vfs0,tag=virtiofs0" in args
    with pytest.raises(BadInput, match="not a folder"):
        virtiofs.plan((tmp_path / "missing",), tmp_path)


@pytest.mark.boot
def test_the_guest_reads_and_writes_a_shared_folder(minimal_build: Built, tmp_path: Path) -> None:
    try:
        virtiofs.find_virtiofsd()
    except BadInput:
        pytest.skip("virtiofsd is not installed")
    built = build(TEST_SPECS / "virtiofs.yml", minimal_build.cache, tmp_path / "out")
    share = tmp_path / "share"
    share.mkdir()
    (share / "hello").write_text("from the host\n")
    chunks: list[bytes] = []
    options = runner.RunOptions(
        prefix=built.prefix, timeout=300, networking="none", instance=runner.Instance(virtiofs=(share,))
    )
    runner.run(options, on_output=chunks.append)
    assert b"share: from the host" in b"".join(chunks)
    assert (share / "back").read_text() == "written-by-guest\n"
