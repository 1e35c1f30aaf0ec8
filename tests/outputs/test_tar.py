"""buildlib.outputs.tar: the merged root as one deterministic tar, each path once, with boot/kernel."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import SPECS, Built, build, once_per_run

from buildlib.outputs.tar import write_tar
from buildlib.rootfs.layers import HARDLINK, Entry
from buildlib.rootfs.tree import Tree, dir_entry, file_entry


@pytest.fixture(scope="module")
def two_tars(request: pytest.FixtureRequest, shared_cache: Path) -> tuple[Built, Built]:
    """specs/minimal.yml built twice under two names, so every part is written twice (once per run:
    a second xdist worker building the same names into the shared store would find them up to date)."""

    def make(out: Path) -> tuple[Built, Built]:
        one = build(SPECS / "minimal.yml", shared_cache, out, name="tar-one", formats=("tar",))
        two = build(SPECS / "minimal.yml", shared_cache, out, name="tar-two", formats=("tar",))
        return one, two

    return once_per_run(request, "tar-out", make)


def test_two_builds_give_the_same_bytes(two_tars: tuple[Built, Built]) -> None:
    one, two = two_tars
    assert "part:tar-two/kernel" in two.report.executed  # really written again, not copied
    assert one.prefix.with_suffix(".tar").read_bytes() == two.prefix.with_suffix(".tar").read_bytes()


def test_gnu_tar_lists_each_path_once_with_boot_first_class(two_tars: tuple[Built, Built]) -> None:
    tar_path = two_tars[0].prefix.with_suffix(".tar")
    listed = subprocess.run(["tar", "tvf", str(tar_path)], capture_output=True, check=True, text=True).stdout
    lines = [line.split() for line in listed.splitlines()]
    names = [fields[5] for fields in lines]
    assert len(names) == len(set(names))
    by_name = {fields[5]: fields for fields in lines}
    assert by_name["boot/"][:2] == ["drwxr-xr-x", "0/0"]
    assert by_name["boot/cmdline"][:3] == ["-rw-r--r--", "0/0", str(len("console=ttyS0 quiet"))]
    assert by_name["boot/kernel"][0] == "-rw-r--r--" and int(by_name["boot/kernel"][2]) > 1_000_000
    assert by_name["bin/sh"][0].startswith("l") and by_name["bin/sh"][-1] == "/bin/busybox"
    assert by_name["etc/distrokit/boot.d/90-report"][:2] == ["-rwxr-xr-x", "0/0"]
    assert any(name.startswith("lib/modules/") and name.endswith("/modules.dep") for name in names)
    with tarfile.open(tar_path) as archive:
        cmdline = archive.extractfile("boot/cmdline")
        assert cmdline is not None and cmdline.read() == b"console=ttyS0 quiet"


def test_hard_links_carry_data_once_whatever_the_order() -> None:
    tree = Tree()
    tree.add(dir_entry("bin"))
    tree.add(file_entry("bin/zz", b"payload", mode=0o755))
    tree.add(Entry("bin/aa", HARDLINK, link="bin/zz"))
    tree.add(file_entry("etc/x", b"x", uid=7, gid=8, mtime=1234))
    out = io.BytesIO()
    write_tar(tree, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert list(members) == ["bin", "bin/aa", "bin/zz", "etc", "etc/x"]
        assert members["bin/aa"].isfile() and members["bin/aa"].size == 7
        assert members["bin/zz"].islnk() and members["bin/zz"].linkname == "bin/aa"
        assert (members["etc/x"].uid, members["etc/x"].gid, members["etc/x"].mtime) == (7, 8, 1234)
        assert members["etc/x"].uname == "" and members["bin"].mode == 0o755
        handle = archive.extractfile("bin/zz")
        assert handle is not None and handle.read() == b"payload"
