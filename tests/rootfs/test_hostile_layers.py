"""Hostile and odd layers: each one crafted here, each refused with one line naming the layer, or kept
exactly as it is when it is legitimate (devices, setuid, non-UTF-8 names, long names, sparse files)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from layerkit import M, store_layer, store_tar, tar_bytes

from buildlib import cli
from buildlib.errors import BuildError, DistrokitError, HostileLayer, StoreError
from buildlib.outputs.cpio import CpioWriter
from buildlib.outputs.tar import write_tar
from buildlib.rootfs import layers
from buildlib.rootfs.tree import Tree, merged_image_tree
from buildlib.spec.refs import ImageRef
from buildlib.store.images import MEDIA_LAYER_GZIP, Image, Layer, Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def image_of(store: Store, *stack: Layer, name: str = "localhost/hostile:1") -> Image:
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    config["rootfs"]["diff_ids"] = [layer.diff_id for layer in stack]  # type: ignore[index]
    digest = store.write_image(ImageRef.parse(name), config, [(x.digest, x.size, x.media_type) for x in stack])
    return store.image_by_digest(name, digest)


def merged(store: Store, *stack: Layer) -> Tree:
    return merged_image_tree(store, image_of(store, *stack), "localhost/hostile:1")


def nothing_indexed(store: Store, layer: Layer) -> bool:
    folder = store.root / "layers"
    return (
        not layers.index_path(store, layer).exists() and not [p for p in folder.glob("*.tar")]
        if folder.exists()
        else True
    )


def gnu_tar(*args: str, cwd: Path) -> bytes:
    return subprocess.run(["tar", *args], cwd=cwd, check=True, capture_output=True).stdout


# escapes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../x", "/etc/passwd", "//x"])
def test_escaping_names_refuse_the_layer(store: Store, name: str) -> None:
    layer = store_layer(store, [M("ok", data=b"1"), M(name, data=b"evil")])
    with pytest.raises(HostileLayer, match=r"climbs out|absolute") as caught:
        merged(store, layer)
    assert layer.digest in str(caught.value) and "localhost/hostile:1" in str(caught.value)
    assert nothing_indexed(store, layer)


@pytest.mark.parametrize("target", ["../../../../etc", "/etc", "inside"])
def test_entries_written_through_a_symlink_refuse_the_layer(store: Store, target: str) -> None:
    layer = store_layer(store, [M("inside/", "d"), M("evil", "l", link=target), M("evil/passwd", data=b"root::0")])
    with pytest.raises(HostileLayer, match="through the symlink 'evil'"):
        merged(store, layer)


def test_a_symlink_from_a_lower_layer_is_no_way_out_either(store: Store) -> None:
    lower = store_layer(store, [M("etc", "l", link="../../../host-etc")])
    upper = store_layer(store, [M("etc/shadow", data=b"x")])
    with pytest.raises(HostileLayer, match=f"{upper.digest}.*through the symlink 'etc'"):
        merged(store, lower, upper)


def test_a_layer_may_replace_a_symlink_with_a_directory(store: Store) -> None:
    lower = store_layer(store, [M("usr/lib/", "d"), M("lib", "l", link="usr/lib")])
    upper = store_layer(store, [M("lib/", "d"), M("lib/x.so", data=b"ELF")])
    tree = merged(store, lower, upper)
    assert tree.get("lib").kind == layers.DIR and tree.get("lib/x.so").read_bytes() == b"ELF"


@pytest.mark.parametrize(
    "members, message",
    [
        ([M("x", "h", link="../../etc/shadow")], "climbs out"),
        ([M("x", "h", link="/etc/shadow")], "absolute"),
        ([M("x", "h", link="later"), M("later", data=b"1")], "does not exist"),
        ([M("d/", "d"), M("x", "h", link="d")], "no regular file"),
        ([M("s", "l", link="/etc"), M("x", "h", link="s")], "no regular file"),
        ([M("x", "h", link="x")], "points at"),
    ],
)
def test_bad_hard_links_refuse_the_layer(store: Store, members: list[M], message: str) -> None:
    layer = store_layer(store, members)
    with pytest.raises(HostileLayer, match=message):
        merged(store, layer)


def test_a_hard_link_into_a_lower_layer_is_kept(store: Store) -> None:
    lower = store_layer(store, [M("bin/busybox", data=b"BB", mode=0o755)])
    upper = store_layer(store, [M("bin/sh", "h", link="bin/busybox")])
    tree = merged(store, lower, upper)
    assert (tree.get("bin/sh").kind, tree.get("bin/sh").link) == (layers.HARDLINK, "bin/busybox")


# legitimate oddities: kept exactly ---------------------------------------------------------------
def test_devices_and_setuid_are_kept_through_the_tar_output(store: Store) -> None:
    layer = store_layer(
        store,
        [
            M("dev/console", "c", mode=0o600),
            M("bin/su", data=b"SU", mode=0o4755),
            M("bin/wall", data=b"W", mode=0o2755),
        ],
    )
    out = io.BytesIO()
    write_tar(merged(store, layer), out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as archive:
        members = {m.name: m for m in archive}
    assert members["bin/su"].mode == 0o4755 and members["bin/wall"].mode == 0o2755
    assert members["dev/console"].ischr() and (members["dev/console"].devmajor, members["dev/console"].devminor) == (
        5,
        1,
    )


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_non_utf8_names_are_kept_byte_for_byte(store: Store, tmp_path: Path, fmt: int) -> None:
    raw_name = b"etc/caf\xe9-\xff\xfe"
    name = raw_name.decode("utf-8", "surrogateescape")
    layer = store_layer(store, [M(name, data=b"latin-1"), M("lnk", "l", link=name)], fmt=fmt)
    tree = merged(store, layer)
    assert tree.get(name).read_bytes() == b"latin-1"
    tar_out, cpio_out = tmp_path / "root.tar", tmp_path / "root.cpio"
    with open(tar_out, "wb") as handle:
        write_tar(tree, handle)
    with open(cpio_out, "wb") as handle:
        CpioWriter(handle).write_all(tree.entries())
    assert raw_name in gnu_tar("--quoting-style=literal", "-tf", str(tar_out), cwd=tmp_path).splitlines()
    listed = subprocess.run(["cpio", "-it", "--quiet"], input=cpio_out.read_bytes(), capture_output=True, check=True)
    assert raw_name in listed.stdout.splitlines()
    extracted = tmp_path / "x"
    extracted.mkdir()
    gnu_tar("-xf", str(tar_out), cwd=extracted)
    assert (extracted / os.fsdecode(raw_name)).read_bytes() == b"latin-1"
    assert os.readlink(extracted / "lnk") == name


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("length", [150, 1000, 4000])
def test_long_names_and_pax_headers(store: Store, fmt: int, length: int) -> None:
    deep = "/".join(["d" * 50] * (length // 51)) + "/f"
    link = "t" * length
    layer = store_layer(
        store, [M(deep, data=b"deep", xattrs=(("user.k", "v" * 300),)), M("l", "l", link=link)], fmt=fmt
    )
    tree = merged(store, layer)
    assert tree.get(deep).read_bytes() == b"deep" and tree.get("l").link == link
    if fmt == tarfile.PAX_FORMAT:
        assert tree.get(deep).xattrs == (("user.k", "v" * 300),)


def test_duplicates_the_last_one_wins(store: Store) -> None:
    layer = store_layer(
        store,
        [
            M("a", data=b"first"),
            M("a", data=b"second"),
            M("d/", "d"),
            M("d/child", data=b"c"),
            M("d", data=b"now a file"),
        ],
    )
    tree = merged(store, layer)
    assert tree.get("a").read_bytes() == b"second"
    assert tree.get("d").read_bytes() == b"now a file" and tree.get("d/child") is None


def test_whiteouts_of_nothing_do_nothing(store: Store) -> None:
    lower = store_layer(store, [M("etc/hosts", data=b"h")])
    upper = store_layer(store, [M("etc/.wh.nothing"), M("gone/.wh..wh..opq"), M("none/deeper/.wh.x")])
    tree = merged(store, lower, upper)
    assert [e.path for e in tree.entries()] == ["etc", "etc/hosts"]


@pytest.mark.parametrize("name", ["etc/.wh.", "etc/.wh..", "etc/.wh...", "etc/.wh...."])
def test_whiteouts_that_name_no_file_are_hostile(store: Store, name: str) -> None:
    layer = store_layer(store, [M(name)])
    if name == "etc/.wh....":  # `...` is a legitimate file name: its whiteout hides nothing here
        assert len(merged(store, layer)) == 0
        return
    with pytest.raises(HostileLayer, match="names no file"):
        merged(store, layer)


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_sparse_files_read_back_whole(store: Store, tmp_path: Path, fmt: str) -> None:
    source = tmp_path / "src"
    source.mkdir()
    sparse = source / "disk.img"
    with open(sparse, "wb") as handle:
        handle.seek(3 << 20)
        handle.write(b"MIDDLE")
        handle.truncate(5 << 20)
        handle.seek(100)
        handle.write(b"HEAD")
    raw = gnu_tar("--sparse", f"--format={fmt}", "-cf", "-", "disk.img", cwd=source)
    assert len(raw) < 1 << 20  # really stored sparse
    layer = store_tar(store, raw, compress=True)
    entry = merged(store, layer).get("disk.img")
    assert entry is not None and entry.size == 5 << 20 and entry.sparse
    assert entry.read_bytes() == sparse.read_bytes()


# broken data ------------------------------------------------------------------------------------
def _good_tar() -> bytes:
    return tar_bytes([M("a", data=b"A" * 5000), M("b", data=b"B" * 5000)])


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(_good_tar()[:3000], id="cut-in-data"),
        pytest.param(_good_tar()[:6300], id="cut-in-header"),
        pytest.param(_good_tar()[:6144] + b"\x07" * 700, id="garbage-after-entry"),
        pytest.param(b"PK\x03\x04 this is a zip, not a tar" * 40, id="not-a-tar"),
        pytest.param(b"", id="empty"),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_truncated_or_non_tar_data_is_refused(store: Store, raw: bytes, compress: bool) -> None:
    layer = store_tar(store, raw, compress=compress)
    with pytest.raises(HostileLayer, match=layer.digest):
        merged(store, layer)
    assert not layers.index_path(store, layer).exists()


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(lambda raw: raw, id="plain-tar-as-gzip"),
        pytest.param(lambda raw: gzip.compress(raw, mtime=0)[:-20], id="truncated-gzip"),
        pytest.param(lambda raw: gzip.compress(raw, mtime=0) + b"junk" * 10, id="trailing-junk"),
        pytest.param(lambda raw: gzip.compress(raw, mtime=0)[:-8] + b"\0" * 8, id="bad-crc"),
    ],
)
def test_non_gzip_data_is_refused(store: Store, blob, tmp_path: Path) -> None:
    raw = _good_tar()
    data = blob(raw)
    layer = Layer(
        store.put_blob(data),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        len(data),
        "sha256:" + hashlib.sha256(raw).hexdigest(),
    )
    with pytest.raises(DistrokitError, match=layer.digest):
        merged(store, layer)
    assert not (store.root / "layers").exists() or not list((store.root / "layers").iterdir())


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(
            lambda raw: gzip.compress(raw[:4000], mtime=0) + gzip.compress(raw[4000:], mtime=0), id="two-members"
        ),
        pytest.param(lambda raw: gzip.compress(raw, mtime=0) + b"\0" * 3000, id="zero-padding"),
        pytest.param(
            lambda raw: gzip.compress(raw[:10], mtime=0) + b"\0" * 600 + gzip.compress(raw[10:], mtime=0),
            id="padding-between-members",
        ),
    ],
)
def test_gzip_streams_the_gzip_tool_reads_are_read(store: Store, blob) -> None:
    raw = _good_tar()
    data = blob(raw)
    assert gzip.decompress(data) == raw  # what `gzip -d` and Python's gzip module read
    layer = Layer(store.put_blob(data), MEDIA_LAYER_GZIP, len(data), "sha256:" + hashlib.sha256(raw).hexdigest())
    assert merged(store, layer).get("b").read_bytes() == b"B" * 5000
    assert layers.uncompressed_path(store, layer).read_bytes() == raw


def test_a_layer_that_inflates_far_beyond_its_reads_comes_out_whole(store: Store) -> None:
    """A few compressed bytes that stand for many chunks of output: every chunk is given out."""
    raw = tar_bytes([M("zeros", data=bytes(5 << 20)), M("tail", data=b"end")])
    layer = store_tar(store, raw, compress=True)
    assert layer.size < 64 << 10
    assert layers.uncompressed_path(store, layer).exists() is False
    assert merged(store, layer).get("tail").read_bytes() == b"end"
    assert layers.uncompressed_path(store, layer).read_bytes() == raw


def test_a_diff_id_that_lies_is_refused(store: Store) -> None:
    good = store_layer(store, [M("a", data=b"1")], compress=True)
    lying = Layer(good.digest, good.media_type, good.size, "sha256:" + "1" * 64)
    with pytest.raises(StoreError, match=f"{good.digest} does not decompress to its diff_id"):
        merged(store, lying)
    assert not layers.uncompressed_path(store, lying).exists()


def test_an_uncompressed_layer_whose_diff_id_is_not_its_digest(store: Store) -> None:
    good = store_layer(store, [M("a", data=b"1")])
    lying = Layer(good.digest, good.media_type, good.size, "sha256:" + "2" * 64)
    with pytest.raises(HostileLayer, match="diff_id"):
        merged(store, lying)


def test_unknown_layer_media_types_are_refused(store: Store) -> None:
    good = store_layer(store, [M("a", data=b"1")])
    odd = Layer(good.digest, "application/vnd.example.weird", good.size, good.diff_id)
    with pytest.raises(DistrokitError, match=r"layers\[0\].mediaType: 'application/vnd.example.weird'"):
        merged(store, odd)
    with pytest.raises(DistrokitError, match="unknown media type"):
        layers.load_index(store, odd)


# decompression bombs ----------------------------------------------------------------------------
def test_a_layer_over_the_size_limit_stops_before_the_disk_fills(store: Store, monkeypatch) -> None:
    bomb = store_layer(store, [M("zeros", data=bytes(8 << 20))], compress=True)
    assert bomb.size < 64 << 10
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "1M")
    with pytest.raises(BuildError, match=rf"localhost/hostile:1 layer {bomb.digest} holds more than 1 MiB") as caught:
        merged(store, bomb)
    assert "--max-layer-size" in str(caught.value)
    assert not (store.root / "layers").exists() or not list((store.root / "layers").iterdir())
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "9M")
    assert merged(store, bomb).get("zeros").size == 8 << 20


def test_the_size_limit_also_holds_for_uncompressed_layers(store: Store, monkeypatch) -> None:
    big = store_layer(store, [M("zeros", data=bytes(2 << 20))])
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "1M")
    with pytest.raises(BuildError, match="holds more than 1 MiB"):
        merged(store, big)


def test_a_nonsense_size_limit_is_bad_input(store: Store, monkeypatch) -> None:
    layer = store_layer(store, [M("a", data=b"1")])
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "lots")
    with pytest.raises(DistrokitError, match="DISTROKIT_MAX_LAYER_SIZE") as caught:
        merged(store, layer)
    assert caught.value.exit_code == 2


# the whole command ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "members",
    [
        [M("../../outside", data=b"evil")],
        [M("evil", "l", link="/tmp"), M("evil/planted", data=b"evil")],
        [M("x", "h", link="nowhere")],
    ],
)
def test_build_refuses_a_hostile_image_in_one_line_and_keeps_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], members: list[M]
) -> None:
    cache = tmp_path / "cache"
    store = Store(cache)
    layer = store_layer(store, members, compress=True)
    image_of(store, layer)
    spec = tmp_path / "hostile.yml"
    spec.write_text("onboot:\n  - name: h\n    image: localhost/hostile:1\n")
    out = tmp_path / "out"
    code = cli.main(["--cache", str(cache), "build", "-q", "-f", "tar", str(spec), "--dir", str(out)])
    err = capsys.readouterr().err
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert layer.digest in err and "localhost/hostile:1" in err
    assert not out.exists() or not list(out.iterdir())
    if "x" not in {m.name for m in members}:  # a hard link may point into a lower layer: only the merge knows
        assert not layers.index_path(store, layer).exists()
    assert not (tmp_path / "outside").exists() and not Path("/tmp/planted").exists()
    written = {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")}
    assert written <= {"cache", "out", "hostile.yml"}


def test_max_layer_size_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "16G")  # so that the teardown undoes what the flag sets
    cache = tmp_path / "cache"
    store = Store(cache)
    bomb = store_layer(store, [M("zeros", data=bytes(4 << 20))], compress=True)
    image_of(store, bomb)
    spec = tmp_path / "bomb.yml"
    spec.write_text("onboot:\n  - name: b\n    image: localhost/hostile:1\n")
    argv = ["--cache", str(cache), "build", "-q", "-f", "tar", str(spec), "--dir", str(tmp_path / "out")]
    code = cli.main([*argv, "--max-layer-size", "2M"])
    err = capsys.readouterr().err
    assert code == 1 and bomb.digest in err and "2 MiB" in err and "localhost/hostile:1" in err
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "16G")  # the flag set it for this process
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert (tmp_path / "out" / "bomb.tar").is_file()


def test_pull_checks_layers_before_naming_the_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from buildlib.upkeep import cache as cache_module

    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "16G")  # so that the teardown undoes what the flag sets
    source = Store(tmp_path / "source")
    bomb = store_layer(source, [M("zeros", data=bytes(4 << 20))], compress=True)
    image_of(source, bomb)
    archive = tmp_path / "bomb.tar"
    cache_module.export_image(source.root, "localhost/hostile:1", archive)
    cache = tmp_path / "cache"
    argv = ["--cache", str(cache), "pull", "-q", f"oci-archive:{archive}", "--name", "localhost/bomb:1"]
    code = cli.main([*argv, "--max-layer-size", "1M"])
    err = capsys.readouterr().err
    assert code == 1 and bomb.digest in err and "1 MiB" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert Store(cache).lookup(ImageRef.parse("localhost/bomb:1")) is None
    assert not (cache / "layers").exists() or not list((cache / "layers").iterdir())
    assert not list((cache / "blobs" / "sha256").iterdir())  # not even unnamed blobs stay
    monkeypatch.setenv(layers.MAX_LAYER_SIZE_ENV, "16G")  # the flag set it for this process
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert Store(cache).lookup(ImageRef.parse("localhost/bomb:1")) is not None
    assert layers.index_path(Store(cache), bomb).is_file()  # the pull indexed it: builds reuse the index


def test_a_whiteout_after_the_layers_own_entries_hides_only_the_lower_ones(store: Store) -> None:
    """Found by benchmarks/fuzz.py: `a/x` then `.wh.a` in one layer left `a/x` without its parent."""
    lower = store_layer(store, [M("a/", "d"), M("a/old", data=b"old")])
    upper = store_layer(store, [M("a/x", data=b"new"), M(".wh.a"), M("b/.wh..wh..opq"), M("b/y", data=b"y")])
    tree = merged(store, lower, upper)
    assert [(e.path, e.kind) for e in tree.entries()] == [("a", "d"), ("a/x", "f"), ("b", "d"), ("b/y", "f")]
