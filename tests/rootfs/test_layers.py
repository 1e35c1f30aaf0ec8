"""buildlib.rootfs.layers: one index per layer, data read in place, whiteouts kept, hostile entries refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from layerkit import M, store_layer

from buildlib.errors import HostileLayer, StoreError
from buildlib.fsutil import sha256_file, xxh_file
from buildlib.rootfs import layers
from buildlib.store.images import Layer, Store


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


@pytest.mark.parametrize("compress", [False, True])
def test_index_keeps_every_kind_and_reads_data_in_place(store: Store, compress: bool) -> None:
    layer = store_layer(
        store,
        [
            M("bin/", "d", mode=0o755),
            M("bin/busybox", data=b"BUSYBOX" * 1000, mode=0o4755, uid=0, gid=0),
            M("bin/sh", "l", link="/bin/busybox"),
            M("bin/ash", "h", link="bin/busybox"),
            M("dev/console", "c", mode=0o600),
            M("run/fifo", "p"),
            M("etc/secret", data=b"x", mode=0o600, uid=100, gid=101, xattrs=(("user.k", "v"),)),
        ],
        compress=compress,
    )
    entries = {e.path: e for e in layers.load_index(store, layer)}
    assert entries["bin/busybox"].read_bytes() == b"BUSYBOX" * 1000
    assert entries["bin/busybox"].mode == 0o4755
    assert (entries["bin/sh"].kind, entries["bin/sh"].link) == (layers.SYMLINK, "/bin/busybox")
    assert (entries["bin/ash"].kind, entries["bin/ash"].link) == (layers.HARDLINK, "bin/busybox")
    assert (entries["dev/console"].kind, entries["dev/console"].devmajor, entries["dev/console"].devminor) == (
        "c",
        5,
        1,
    )
    assert entries["run/fifo"].kind == layers.FIFO
    secret = entries["etc/secret"]
    assert (secret.uid, secret.gid, secret.mode, secret.xattrs) == (100, 101, 0o600, (("user.k", "v"),))


def test_index_is_written_once_per_digest(store: Store) -> None:
    layer = store_layer(store, [M("a", data=b"1")])
    path = layers.ensure_index(store, layer)
    stamp = path.stat().st_mtime_ns
    layers.load_index(store, layer)
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize("compress", [False, True])
def test_the_index_names_the_key_of_the_tar_it_was_read_from(store: Store, compress: bool) -> None:
    """The key is taken as the tar is checked or decompressed, in the same read: it is the file's."""
    layer = store_layer(store, [M("a", data=b"1" * 5000), M("b", data=b"2")], compress=compress)
    header = json.loads(layers.ensure_index(store, layer).read_bytes().split(b"\n", 1)[0])
    assert header["tar_key"] == xxh_file(Path(header["tar"]))


def test_a_decompressed_copy_without_its_index_is_taken_only_with_its_diff_id(store: Store) -> None:
    """The copy is written without an fsync: one torn by a power cut before its index was written is
    made again from the blob, not indexed as it is."""
    layer = store_layer(store, [M("etc/motd", data=b"hello " * 2000)], compress=True)
    layers.ensure_index(store, layer).unlink()
    copy = layers.uncompressed_path(store, layer)
    torn = bytearray(copy.read_bytes())
    torn[600:700] = b"\0" * 100
    copy.write_bytes(bytes(torn))
    entries = {e.path: e for e in layers.load_index(store, layer)}
    assert entries["etc/motd"].read_bytes() == b"hello " * 2000
    assert sha256_file(copy) == layer.diff_id


def test_whiteouts_are_entries(store: Store) -> None:
    layer = store_layer(store, [M("etc/.wh.passwd"), M("var/cache/.wh..wh..opq")])
    kinds = {(e.path, e.kind) for e in layers.load_index(store, layer)}
    assert kinds == {("etc/passwd", layers.WHITEOUT), ("var/cache", layers.OPAQUE)}


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "./../x"])
def test_climbing_paths_are_hostile(store: Store, name: str) -> None:
    layer = store_layer(store, [M(name, data=b"evil")])
    with pytest.raises(HostileLayer, match="climbs out of the root"):
        layers.load_index(store, layer)
    assert not layers.index_path(store, layer).exists()


def test_hardlink_out_of_root_is_hostile(store: Store) -> None:
    layer = store_layer(store, [M("x", "h", link="../../etc/shadow")])
    with pytest.raises(HostileLayer):
        layers.load_index(store, layer)


def test_absolute_names_are_hostile(store: Store) -> None:
    layer = store_layer(store, [M("/etc/hosts", data=b"h")])
    with pytest.raises(HostileLayer, match="absolute path"):
        layers.load_index(store, layer)
    assert not layers.index_path(store, layer).exists()


def test_wrong_diff_id_poisons_nothing(store: Store) -> None:
    good = store_layer(store, [M("a", data=b"1")], compress=True)
    lying = Layer(good.digest, good.media_type, good.size, "sha256:" + "0" * 64)
    with pytest.raises(StoreError, match="diff_id"):
        layers.load_index(store, lying)
    assert not layers.uncompressed_path(store, lying).exists()
    assert not layers.index_path(store, lying).exists()


def test_nested_tar_is_indexed_in_place(store: Store) -> None:
    from layerkit import tar_bytes

    inner = tar_bytes([M("lib/modules/x.ko", data=b"MODULE")])
    layer = store_layer(store, [M("kernel", data=b"K"), M("kernel.tar", data=inner)])
    outer = {e.path: e for e in layers.load_index(store, layer)}
    nested = layers.nested_tar_entries(outer["kernel.tar"], "test")
    module = next(e for e in nested if e.path == "lib/modules/x.ko")
    assert module.source == outer["kernel.tar"].source
    assert module.read_bytes() == b"MODULE"


def test_several_new_layers_are_indexed_side_by_side_once_each(store: Store, monkeypatch) -> None:
    made = [store_layer(store, [M(f"f{n}", data=bytes([n]) * 70_000)], compress=True) for n in range(5)]
    indexed: list[str] = []
    write_index = layers._write_index

    def counted(*args):
        indexed.append(args[1].digest)
        return write_index(*args)

    monkeypatch.setattr(layers, "_write_index", counted)
    # one layer named by two images, and twice by one: indexed once
    layers.ensure_indexes(store, [(layer, "image-a") for layer in made] + [(made[0], "image-b"), (made[1], "image-a")])
    assert sorted(indexed) == sorted(layer.digest for layer in made)
    for number, layer in enumerate(made):
        assert layers.check_index(layers.index_path(store, layer), with_tar=True) == ""
        assert {e.path: e.read_bytes() for e in layers.load_index(store, layer)} == {
            f"f{number}": bytes([number]) * 70_000
        }
    layers.ensure_indexes(store, [(layer, "image-a") for layer in made])
    assert len(indexed) == len(made)  # all indexed: nothing done again


def test_side_by_side_indexing_raises_the_first_failure_in_order(store: Store) -> None:
    good = store_layer(store, [M("a", data=b"1")], compress=True)
    bad = [store_layer(store, [M(f"../escape{n}", data=b"x")], compress=True) for n in range(2)]
    with pytest.raises(HostileLayer, match=f"image-b layer {bad[0].digest}"):
        layers.ensure_indexes(store, [(good, "image-a"), (bad[0], "image-b"), (bad[1], "image-c")])
    assert layers.index_path(store, good).is_file()
    assert not any(layers.index_path(store, layer).exists() for layer in bad)


def test_entries_read_through_open_sources_give_the_same_bytes(store: Store) -> None:
    first = store_layer(store, [M("a", data=b"A" * 300_000), M("b", data=b""), M("c", data=b"C" * 5)])
    second = store_layer(store, [M("d", data=bytes(range(256)) * 5000)], compress=True)
    entries = [*layers.load_index(store, first), *layers.load_index(store, second)]
    sources = layers.OpenSources()
    try:
        assert [b"".join(e.read_chunks(sources)) for e in entries] == [e.read_bytes() for e in entries]
        assert len({e.source for e in entries if e.size}) == 2
    finally:
        sources.close()


def test_a_layer_tar_cut_short_under_open_sources_is_a_store_error(store: Store, tmp_path: Path) -> None:
    layer = store_layer(store, [M("a", data=b"A" * 10_000)])
    (entry,) = layers.load_index(store, layer)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(Path(entry.source).read_bytes()[: entry.offset + 100])
    short = dataclasses.replace(entry, source=str(cut))
    sources = layers.OpenSources()
    try:
        with pytest.raises(StoreError, match="ends before the data of a"):
            b"".join(short.read_chunks(sources))
    finally:
        sources.close()
