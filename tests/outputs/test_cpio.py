"""buildlib.outputs.cpio and initrd segments: GNU cpio and the kernel's rules read what we write."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from buildlib.errors import StoreError
from buildlib.outputs.compress import Compression, decompress
from buildlib.outputs.initrd import join_segments, seal_path, write_segment
from buildlib.rootfs import layers
from buildlib.rootfs.layers import Entry
from buildlib.rootfs.parts import Tree, file_entry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="extracting device nodes with cpio needs root")


def sample_tree() -> Tree:
    tree = Tree()
    tree.add(Entry("bin", layers.DIR, mode=0o755))
    tree.add(file_entry("bin/busybox", b"\x7fELF" + b"x" * 5001, mode=0o755))
    tree.add(Entry("bin/sh", layers.SYMLINK, link="busybox"))
    tree.add(Entry("bin/ash", layers.HARDLINK, mode=0o755, link="bin/busybox"))
    tree.add(file_entry("etc/shadow", b"root:*:", mode=0o600, uid=0, gid=42))
    tree.add(Entry("dev/null", layers.CHARDEV, mode=0o666, devmajor=1, devminor=3))
    tree.add(Entry("tmp", layers.DIR, mode=0o1777))
    tree.add(file_entry("empty", b""))
    return tree


def extract(archive: Path, into: Path) -> None:
    into.mkdir()
    data = decompress(archive.read_bytes())
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], input=data, cwd=into, check=True)


def test_gnu_cpio_reads_our_segment(tmp_path: Path) -> None:
    segment = tmp_path / "seg.cpio.gz"
    write_segment(sample_tree().entries(), segment)
    root = tmp_path / "root"
    extract(segment, root)
    assert (root / "bin/busybox").read_bytes() == b"\x7fELF" + b"x" * 5001
    assert os.readlink(root / "bin/sh") == "busybox"
    assert os.stat(root / "bin/ash").st_ino == os.stat(root / "bin/busybox").st_ino
    assert (root / "bin/ash").read_bytes() == (root / "bin/busybox").read_bytes()
    shadow = os.stat(root / "etc/shadow")
    assert (shadow.st_mode & 0o7777, shadow.st_gid) == (0o600, 42)
    null = os.stat(root / "dev/null")
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert os.stat(root / "tmp").st_mode & 0o7777 == 0o1777
    assert (root / "empty").read_bytes() == b""


def test_segments_are_deterministic(tmp_path: Path) -> None:
    write_segment(sample_tree().entries(), tmp_path / "a")
    write_segment(sample_tree().entries(), tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_later_segment_replaces_earlier_file(tmp_path: Path) -> None:
    first, second = Tree(), Tree()
    first.add(file_entry("etc/motd", b"old"))
    second.add(file_entry("etc/motd", b"new"))
    write_segment(first.entries(), tmp_path / "1")
    write_segment(second.entries(), tmp_path / "2")
    join_segments([tmp_path / "1", tmp_path / "2"], tmp_path / "initrd")
    # compressed streams concatenate; cpio reads archive after archive like the kernel does
    root = tmp_path / "root"
    root.mkdir()
    data = decompress((tmp_path / "initrd").read_bytes())
    subprocess.run(["cpio", "-idmu", "--quiet"], input=data, cwd=root, check=True)
    assert (root / "etc/motd").read_bytes() == b"old"  # GNU cpio stops at the first trailer ...
    trailer = data.index(b"TRAILER!!!")
    rest = data[trailer:].split(b"070701", 1)[1]
    subprocess.run(["cpio", "-idmu", "--quiet"], input=b"070701" + rest, cwd=root, check=True)
    assert (root / "etc/motd").read_bytes() == b"new"  # ... and the second archive replaces the file


def many_files_tree(count: int, size: int) -> Tree:
    tree = Tree()
    for number in range(count):
        tree.add(file_entry(f"data/{number:04d}", bytes([number % 251]) * size))
    return tree


MAGIC = {Compression.GZIP: b"\x1f\x8b\x08\x00\x00\x00\x00\x00", Compression.ZSTD: b"\x28\xb5\x2f\xfd"}


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP])
def test_big_segment_is_many_members_cut_between_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: Compression
) -> None:
    from buildlib.outputs import initrd

    monkeypatch.setattr(initrd, "MEMBER_SIZE", 64 << 10)
    tree = many_files_tree(200, 10_000)
    write_segment(tree.entries(), tmp_path / "seg", compression, workers=2)
    raw = (tmp_path / "seg").read_bytes()
    assert raw.count(MAGIC[compression]) > 10
    root = tmp_path / "root"
    extract(tmp_path / "seg", root)
    assert sorted(p.name for p in (root / "data").iterdir()) == [f"{n:04d}" for n in range(200)]
    assert (root / "data" / "0199").read_bytes() == bytes([199 % 251]) * 10_000
    write_segment(tree.entries(), tmp_path / "again", compression, workers=1)
    assert (tmp_path / "again").read_bytes() == raw  # the bytes do not depend on the thread count


@pytest.mark.parametrize("compression", list(Compression))
def test_entry_bigger_than_the_buffer_streams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compression: Compression
) -> None:
    from buildlib.outputs import initrd

    monkeypatch.setattr(initrd, "MEMBER_SIZE", 16 << 10)
    monkeypatch.setattr(initrd, "STREAM_AFTER", 64 << 10)
    tree = many_files_tree(3, 10_000)
    tree.add(file_entry("big", b"0123456789" * 100_000))
    write_segment(tree.entries(), tmp_path / "seg", compression, workers=2)
    root = tmp_path / "root"
    extract(tmp_path / "seg", root)
    assert (root / "big").read_bytes() == b"0123456789" * 100_000
    assert (root / "data" / "0002").read_bytes() == bytes([2]) * 10_000


def test_a_segment_that_changed_after_it_was_sealed_is_refused_as_it_is_joined(tmp_path: Path) -> None:
    tree = sample_tree()
    write_segment(tree.entries(), tmp_path / "1")
    write_segment(tree.entries(), tmp_path / "2")
    join_segments([tmp_path / "1", tmp_path / "2"], tmp_path / "initrd")
    before = (tmp_path / "initrd").read_bytes()
    damaged = bytearray((tmp_path / "2").read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    (tmp_path / "2").write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match=r"segment .*/2 its bytes do not match its key: run `distrokit cache check"):
        join_segments([tmp_path / "1", tmp_path / "2"], tmp_path / "initrd")
    assert (tmp_path / "initrd").read_bytes() == before  # the old initrd stands; no temp file is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "1.xxh", "2", "2.xxh", "initrd"]
    seal_path(tmp_path / "1").unlink()
    with pytest.raises(StoreError, match="has no key to check it against"):
        join_segments([tmp_path / "1"], tmp_path / "initrd")


def test_a_segment_whose_key_cannot_be_written_is_not_left_behind(tmp_path: Path) -> None:
    """A full disk may strike the key file after the segment landed: the segment goes too, or the store
    would hold a segment that `cache check` and every join refuse as damaged."""
    seal_path(tmp_path / "1").mkdir()  # the key file cannot be renamed into place
    with pytest.raises(OSError):
        write_segment(sample_tree().entries(), tmp_path / "1")
    assert not (tmp_path / "1").exists()
