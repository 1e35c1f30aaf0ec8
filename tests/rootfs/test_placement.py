"""buildlib.rootfs.placement: a real build of a spec using many container, volume and files options, whose
root (paths, types, modes, owners, link targets) is read back from the tar output and, for one
bundle, from its initrd segment with GNU cpio."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import COMPONENTS, Built, build, once_per_run

from buildlib.outputs.compress import decompress
from buildlib.outputs.initrd import segment_path

SPEC = """\
init:
  - "@pkg:../components/init"
onboot:
  - name: first
    image: "@pkg:../components/init"
    command: ["/bin/true"]
    binds: ["data:/data", "seed:/seed:ro"]
  - name: second
    image: "@pkg:../components/init"
    readonly: true
    uid: web
onshutdown:
  - name: bye
    image: "@pkg:../components/init"
    readonly: true
services:
  - name: web
    image: "@pkg:../components/init"
    capabilities: [CAP_NET_BIND_SERVICE]
    net: new
volumes:
  - name: data
  - name: seed
    image: "@pkg:../components/init"
    readonly: true
  - name: layout
    image: "@pkg:../components/init"
    format: oci
files:
  - path: etc/app/app.conf
    contents: "port=80\\n"
    uid: web
    gid: web
    mode: "0640"
  - path: var/lib/app
    directory: true
  - path: /usr/local/bin/app
    symlink: /bin/busybox
  - path: etc/distrokit/spec.yml
    metadata: yaml
  - path: etc/missing
    source: ./does-not-exist
    optional: true
  - path: root/.profile
    source: ~/profile
"""


@dataclass(frozen=True)
class Item:
    kind: str  # tarfile type: "0" file, "5" dir, "2" symlink
    mode: int
    uid: int = 0
    gid: int = 0
    link: str = ""


def listing(tar_path: Path) -> dict[str, Item]:
    with tarfile.open(tar_path) as archive:
        return {
            m.name.rstrip("/"): Item(m.type.decode(), m.mode, m.uid, m.gid, m.linkname) for m in archive.getmembers()
        }


@pytest.fixture(scope="module")
def many(request: pytest.FixtureRequest, shared_cache: Path) -> tuple[Built, Path]:
    """The spec built once per run: its state is named by the spec's path relative to the folder the build
    runs in (specs/many.yml), so two xdist workers building their own copies would share one state."""
    return once_per_run(request, "many", lambda root: _build_many(root, shared_cache))


def _build_many(root: Path, shared_cache: Path) -> tuple[Built, Path]:
    (root / "specs").mkdir()
    os.symlink(COMPONENTS, root / "components")
    (root / "home").mkdir()
    (root / "home" / "profile").write_text("export PS1='# '\n")
    spec = root / "specs" / "many.yml"
    spec.write_text(SPEC)
    old_home, old_cwd = os.environ.get("HOME"), os.getcwd()
    os.environ["HOME"] = str(root / "home")
    os.chdir(root)  # relative `source:` paths are read from the folder the build runs in
    try:
        built = build(spec, shared_cache, root / "out", formats=("tar",))
    finally:
        os.chdir(old_cwd)
        if old_home is not None:
            os.environ["HOME"] = old_home
    return built, spec


D, F, L = "5", "0", "2"
WEB = 103  # first 100, second 101, bye 102, web 103


def test_bundles_volumes_and_files_are_placed_as_linuxkit_places_them(many: tuple[Built, Path]) -> None:
    built, _ = many
    items = listing(built.prefix.with_suffix(".tar"))
    first, second = "containers/onboot/000-first", "containers/onboot/001-second"
    expected = {
        "containers": Item(D, 0o755),
        first: Item(D, 0o755),
        f"{first}/config.json": Item(F, 0o644),
        f"{first}/runtime.json": Item(F, 0o644),
        f"{first}/lower": Item(D, 0o755),
        f"{first}/lower/bin/busybox": Item(F, 0o755),
        f"{first}/lower/etc/hosts": Item(F, 0o644),
        f"{first}/lower/etc/resolv.conf": Item(F, 0o644),
        f"{first}/lower/etc/mtab": Item(L, 0o777, link="/proc/mounts"),
        f"{first}/lower/dev/pts": Item(D, 0o755),
        f"{first}/lower/dev/shm": Item(D, 0o755),
        f"{first}/tmp": Item(D, 0o755),
        f"{first}/rootfs": Item(D, 0o755),
        f"{second}/rootfs": Item(D, 0o755),
        f"{second}/config.json": Item(F, 0o644),
        "containers/onshutdown/000-bye/rootfs": Item(D, 0o755),
        "containers/services/web/tmp": Item(D, 0o755),
        "containers/services/web/rootfs": Item(D, 0o755),
        "containers/services/web/runtime.json": Item(F, 0o644),
        "containers/volumes/data/lower": Item(D, 0o755),
        "containers/volumes/data/tmp": Item(D, 0o755),
        "containers/volumes/data/merged": Item(D, 0o755),
        "containers/volumes/seed/merged": Item(D, 0o755),
        "containers/volumes/seed/lower/bin/busybox": Item(F, 0o755),
        # a volume's image gets the touches LinuxKit gives init and volume images
        "containers/volumes/seed/lower/etc/hosts": Item(F, 0o644),
        "containers/volumes/seed/lower/etc/resolv.conf": Item(L, 0o777, link="/run/resolvconf/resolv.conf"),
        "containers/volumes/seed/lower/etc/mtab": Item(L, 0o777, link="/proc/mounts"),
        "containers/volumes/seed/lower/dev": Item(D, 0o755),
        "containers/volumes/seed/lower/dev/pts": Item(D, 0o755),
        "containers/volumes/seed/lower/dev/shm": Item(D, 0o755),
        "containers/volumes/seed/lower/proc": Item(D, 0o755),
        "containers/volumes/seed/lower/sys": Item(D, 0o755),
        "etc": Item(D, 0o755),
        "etc/app": Item(D, 0o750, WEB, WEB),
        "etc/app/app.conf": Item(F, 0o640, WEB, WEB),
        "var/lib": Item(D, 0o755),  # the init image has /var/lib: it keeps its mode
        "var/lib/app": Item(D, 0o700),
        "usr/local": Item(D, 0o755),  # so has /usr/local (LinuxKit's root layout): it keeps its mode
        "usr/local/bin/app": Item(L, 0o777, link="/bin/busybox"),
        "etc/distrokit/spec.yml": Item(F, 0o600),
        "root": Item(D, 0o700),
        "root/.profile": Item(F, 0o600),
    }
    assert {path: items.get(path) for path in expected} == expected
    absent = [f"{first}/lower/etc/hostname", f"{second}/lower", f"{second}/tmp", "etc/missing", "boot"]
    absent += ["containers/volumes/seed/lower/etc/hostname", "containers/volumes/data/lower/etc"]
    # no tmp/ is LinuxKit's sign of a read-only volume: the init binds lower/ read-only, no overlay
    absent += ["containers/volumes/seed/tmp"]
    assert [path for path in absent if path in items] == []
    assert [
        p for p in items if p.startswith(f"{second}/rootfs/") or p.startswith("containers/services/web/rootfs/")
    ] == []
    # the image the four containers share is stored once (plus once in init and once in the volume)
    assert sorted(p for p in items if p.endswith("bin/busybox") and items[p].kind == F) == [
        "bin/busybox",
        f"{first}/lower/bin/busybox",
        "containers/volumes/seed/lower/bin/busybox",
    ]


def _member(built: Built, path: str) -> bytes:
    with tarfile.open(built.prefix.with_suffix(".tar")) as archive:
        handle = archive.extractfile(path)
        assert handle is not None
        return handle.read()


def test_bundles_point_at_the_shared_image_and_the_volumes(many: tuple[Built, Path]) -> None:
    built, _ = many
    second = json.loads(_member(built, "containers/onboot/001-second/runtime.json"))
    assert second["mounts"] == [
        {
            "source": "/containers/onboot/000-first/lower",
            "destination": "/containers/onboot/001-second/rootfs",
            "options": ["bind"],
        }
    ]
    assert json.loads(_member(built, "containers/onboot/001-second/config.json"))["process"]["user"] == {
        "uid": WEB,
        "gid": 0,
    }
    web = json.loads(_member(built, "containers/services/web/runtime.json"))
    assert web["mounts"][2]["options"][0] == "lowerdir=/containers/onboot/000-first/lower"
    first = json.loads(_member(built, "containers/onboot/000-first/config.json"))
    binds = {m["destination"]: (m["source"], m["options"]) for m in first["mounts"] if m["type"] == "bind"}
    assert binds == {
        "/data": ("/containers/volumes/data/merged", ["rw", "rbind", "rshared"]),
        "/seed": ("/containers/volumes/seed/merged", ["ro", "rbind"]),
    }
    assert b"name: web" in _member(built, "etc/distrokit/spec.yml")
    assert _member(built, "root/.profile") == b"export PS1='# '\n"


def test_gnu_cpio_reads_a_bundle_segment(many: tuple[Built, Path], tmp_path: Path) -> None:
    built, _ = many
    pointer = built.state_dir / "onboot-001-second.segment"
    segment = segment_path(built.cache, pointer.read_text().strip())
    archive = decompress(segment.read_bytes())
    listed = subprocess.run(["cpio", "-itv", "--quiet"], input=archive, capture_output=True, check=True).stdout
    lines = [line.split() for line in listed.decode().splitlines()]
    assert [(f[0], f[2], f[3], f[-1]) for f in lines] == [
        ("drwxr-xr-x", "root", "root", "containers"),
        ("drwxr-xr-x", "root", "root", "containers/onboot"),
        ("drwxr-xr-x", "root", "root", "containers/onboot/001-second"),
        ("-rw-r--r--", "root", "root", "containers/onboot/001-second/config.json"),
        ("drwxr-xr-x", "root", "root", "containers/onboot/001-second/rootfs"),
        ("-rw-r--r--", "root", "root", "containers/onboot/001-second/runtime.json"),
    ]
    subprocess.run(["cpio", "-idm", "--quiet"], input=archive, cwd=tmp_path, check=True)
    config = tmp_path / "containers/onboot/001-second/config.json"
    assert config.read_bytes() == _member(built, "containers/onboot/001-second/config.json")


def test_changing_one_service_rebuilds_only_its_bundle(many: tuple[Built, Path], shared_cache: Path) -> None:
    built, spec = many
    spec.write_text(SPEC.replace("capabilities: [CAP_NET_BIND_SERVICE]", "capabilities: [CAP_NET_RAW]"))
    old_cwd, old_home = os.getcwd(), os.environ.get("HOME")
    os.chdir(spec.parent.parent)
    os.environ["HOME"] = str(spec.parent.parent / "home")
    try:
        again = build(spec, shared_cache, built.out_dir, formats=("tar",))
    finally:
        os.chdir(old_cwd)
        if old_home is not None:
            os.environ["HOME"] = old_home
    parts = sorted(name for name in again.report.executed if name.startswith("part:"))
    # files rebuilds too, only because etc/distrokit/spec.yml (`metadata: yaml`) holds the spec
    assert parts == ["part:many/files", "part:many/services-web"]
    caps = json.loads(_member(again, "containers/services/web/config.json"))["process"]["capabilities"]
    assert caps["effective"] == ["CAP_NET_RAW"]


def test_an_oci_format_volume_is_an_image_layout_skopeo_reads(many: tuple[Built, Path], tmp_path: Path) -> None:
    built, _ = many
    with tarfile.open(built.prefix.with_suffix(".tar")) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("containers/volumes/layout/")]
        archive.extractall(tmp_path, members=members, filter="tar")
    layout = tmp_path / "containers/volumes/layout/lower"
    for blob in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    index = json.loads((layout / "index.json").read_text())
    inspected = subprocess.run(["skopeo", "inspect", f"oci:{layout}"], capture_output=True, check=True, text=True)
    assert json.loads(inspected.stdout)["Digest"] == index["manifests"][0]["digest"]
