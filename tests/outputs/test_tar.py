"""buildlib.outputs.tar: the merged root as one deterministic tar, each path once, with boot/kernel."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import SPECS, Built, build, once_per_run

from buildlib import tasks
from buildlib.outputs.tar import write_tar
from buildlib.rootfs.layers import HARDLINK, Entry
from buildlib.rootfs.tree import Tree, dir_entry, file_entry
from buildlib.spec.model import Spec, load_spec
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"


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


# LinuxKit's PAX headers, read back with tarfile -------------------------------------------------
@pytest.fixture(scope="module")
def linuxkit_tar(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Spec]:
    out = tmp_path_factory.mktemp("lk-tar")
    built = build(TEST_SPECS / "linuxkit-tar.yml", shared_cache, out, formats=("tar",))
    return built, load_spec([TEST_SPECS / "linuxkit-tar.yml"], resolve_pkg=tasks.Plan(Store(shared_cache)).resolver)


def _headers(tar_path: Path) -> dict[str, tuple[str, str]]:
    with tarfile.open(tar_path) as archive:
        return {
            member.name: (
                member.pax_headers.get("LINUXKIT.source", ""),
                member.pax_headers.get("LINUXKIT.location", ""),
            )
            for member in archive.getmembers()
        }


def test_every_tar_entry_says_where_it_came_from_as_linuxkit_does(linuxkit_tar: tuple[Built, Spec]) -> None:
    built, spec = linuxkit_tar
    headers = _headers(built.prefix.with_suffix(".tar"))
    assert all(source and location for source, location in headers.values()), [
        name for name, value in headers.items() if not all(value)
    ]
    kernel, init, runc = (str(ImageRef.parse(ref)) for ref in (spec.kernel.image, *spec.init))  # type: ignore[union-attr]
    busybox = str(ImageRef.parse(spec.onboot[0].image))
    assert kernel.startswith("docker.io/distrokit/kernel:"), "the reference written out in full, as LinuxKit does"
    expected = {
        "boot/kernel": (kernel, "kernel"),
        "boot/cmdline": (kernel, "kernel"),
        "bin/busybox": (init, "init[0]"),
        "usr/sbin/runc": (runc, "init[1]"),
        "containers/onboot/000-hello/config.json": (busybox, "onboot[0]"),
        "containers/onboot/000-hello/lower/bin/busybox": (busybox, "onboot[0]"),
        "containers/services/again/runtime.json": (busybox, "services[0]"),
        "containers/volumes/blank/lower": ("empty", "volume[0]"),
        "containers/volumes/blank/merged": ("linuxkit.volumes", "volume[0]"),
        "containers/volumes/tools/lower/bin/busybox": (busybox, "volume[1]"),
        "containers/volumes/tools/tmp": ("linuxkit.volumes", "volume[1]"),
        "etc/linuxkit-tar": ("linuxkit.files", "files[0]"),
        "etc/linuxkit-tar/first": ("linuxkit.files", "files[0]"),
        "etc/linuxkit-tar/second": ("linuxkit.files", "files[1]"),
        "sbom.spdx.json": ("linuxkit.sbom", "sbom"),
    }
    assert {name: headers.get(name) for name in expected} == expected


def test_the_root_carries_linuxkits_sbom_reproducibly(linuxkit_tar: tuple[Built, Spec], shared_cache: Path) -> None:
    """/sbom.spdx.json as LinuxKit writes it (name sbom, its namespace form), with a namespace drawn from
    the content instead of LinuxKit's random UUID: the same images give the same bytes."""
    built, _ = linuxkit_tar
    with tarfile.open(built.prefix.with_suffix(".tar")) as archive:
        member = archive.getmember("sbom.spdx.json")
        data = archive.extractfile(member).read()  # type: ignore[union-attr]
        ours = json.loads(archive.extractfile("etc/distrokit/sbom.spdx.json").read())  # type: ignore[union-attr]
    assert (member.mode, member.uid, member.gid) == (0o644, 0, 0)
    document = json.loads(data)
    assert (document["spdxVersion"], document["name"], document["SPDXID"]) == ("SPDX-2.3", "sbom", "SPDXRef-DOCUMENT")
    assert re.fullmatch(r"https://github\.com/linuxkit/linuxkit/sbom-[0-9a-f-]{36}", document["documentNamespace"])
    assert document["creationInfo"]["licenseListVersion"] == "3.20"
    assert document["packages"] == ours["packages"] and document["relationships"] == ours["relationships"]
    assert any(package["name"] == "busybox-static" for package in document["packages"])
    again = build(TEST_SPECS / "linuxkit-tar.yml", shared_cache, built.out_dir, name="lk-tar-again", formats=("tar",))
    with tarfile.open(again.prefix.with_suffix(".tar")) as archive:
        assert archive.extractfile("sbom.spdx.json").read() == data  # type: ignore[union-attr]
    without = build(
        TEST_SPECS / "linuxkit-tar.yml", shared_cache, built.out_dir, name="lk-nosbom", formats=("tar",), sbom=False
    )
    with tarfile.open(without.prefix.with_suffix(".tar")) as archive:
        names = archive.getnames()
    assert "sbom.spdx.json" not in names and "etc/distrokit/sbom.spdx.json" not in names, "--no-sbom leaves both out"
