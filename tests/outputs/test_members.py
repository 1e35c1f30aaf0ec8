"""buildlib.outputs.members: the entries of initrds and tars, and the first one two outputs differ in."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.outputs.compress import Compression
from buildlib.outputs.initrd import join_segments, write_segment
from buildlib.outputs.members import first_difference, kind_of, members
from buildlib.outputs.tar import write_tar
from buildlib.rootfs.parts import Tree, dir_entry, file_entry


def tree(motd: bytes, mtime: int = 0) -> Tree:
    root = Tree()
    root.add(dir_entry("etc", mtime=0))
    root.add(file_entry("etc/hostname", b"box\n", mtime=0))
    root.add(file_entry("etc/motd", motd, mode=0o644, mtime=mtime))
    root.add(file_entry("etc/zz", b"last\n", mtime=0))
    return root


@pytest.mark.parametrize("compression", list(Compression))
def test_an_initrd_of_two_segments_lists_every_entry(tmp_path: Path, compression: Compression) -> None:
    write_segment(tree(b"hi\n").entries(), tmp_path / "a", compression)
    write_segment([file_entry("later", b"x", mtime=0)], tmp_path / "b", compression)
    join_segments([tmp_path / "a", tmp_path / "b"], tmp_path / "initrd")
    assert kind_of(tmp_path / "initrd") == "cpio"
    assert [m.path for m in members(tmp_path / "initrd")] == ["etc", "etc/hostname", "etc/motd", "etc/zz", "later"]


@pytest.mark.parametrize("compression", [Compression.ZSTD, Compression.GZIP])
def test_the_first_differing_cpio_member_is_named_with_what_differs(tmp_path: Path, compression: Compression) -> None:
    write_segment(tree(b"hi\n").entries(), tmp_path / "a", compression)
    write_segment(tree(b"HI\n").entries(), tmp_path / "b", compression)
    write_segment(tree(b"hi\n", mtime=1700000000).entries(), tmp_path / "c", compression)
    data = first_difference(tmp_path / "a", tmp_path / "b")
    assert data is not None and data.member == "etc/motd" and data.detail.startswith("data sha256")
    stamp = first_difference(tmp_path / "a", tmp_path / "c")
    assert stamp is not None and stamp.member == "etc/motd" and stamp.detail == "mtime 0 != 1700000000"
    assert first_difference(tmp_path / "a", tmp_path / "a") is None


def test_other_framing_of_the_same_members_is_no_member_difference(tmp_path: Path) -> None:
    write_segment(tree(b"hi\n").entries(), tmp_path / "gz", Compression.GZIP)
    write_segment(tree(b"hi\n").entries(), tmp_path / "zst", Compression.ZSTD)
    assert first_difference(tmp_path / "gz", tmp_path / "zst") is None


def test_the_first_differing_tar_member_is_named(tmp_path: Path) -> None:
    for name, motd in (("a.tar", b"hi\n"), ("b.tar", b"hi\n!")):
        with open(tmp_path / name, "wb") as out:
            write_tar(tree(motd), out)
    assert kind_of(tmp_path / "a.tar") == "tar"
    found = first_difference(tmp_path / "a.tar", tmp_path / "b.tar")
    assert found is not None and found.member == "etc/motd" and "size 3 != 4" in found.detail


def test_a_member_only_one_side_has_is_named(tmp_path: Path) -> None:
    shorter = tree(b"hi\n")
    longer = tree(b"hi\n")
    longer.add(file_entry("etc/zzz", b"", mtime=0))
    write_segment(shorter.entries(), tmp_path / "a", Compression.NONE)
    write_segment(longer.entries(), tmp_path / "b", Compression.NONE)
    found = first_difference(tmp_path / "a", tmp_path / "b")
    assert found is not None and found.member == "etc/zzz" and "only the rebuilt output" in found.detail


def test_a_file_without_members_has_no_member_difference(tmp_path: Path) -> None:
    (tmp_path / "k1").write_bytes(b"\x7fELF one")
    (tmp_path / "k2").write_bytes(b"\x7fELF two")
    assert kind_of(tmp_path / "k1") is None and first_difference(tmp_path / "k1", tmp_path / "k2") is None


def test_differing_data_is_named_with_both_hashes_in_full(tmp_path: Path) -> None:
    write_segment(tree(b"hi\n").entries(), tmp_path / "a", Compression.GZIP)
    write_segment(tree(b"HI\n").entries(), tmp_path / "b", Compression.GZIP)
    left, right = ({m.path: m.data for m in members(tmp_path / name)}["etc/motd"] for name in "ab")
    found = first_difference(tmp_path / "a", tmp_path / "b")
    assert found is not None and found.detail == f"data sha256 {left} != {right}" and len(left) == 64
