"""buildlib.upkeep.cache: usage records, ls, du, gc (what it keeps and frees, LRU with --keep), rm, export, import."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import SPECS, Built, build, new_cache
from layerkit import M, store_layer

from buildlib import cli
from buildlib.errors import BadInput, ImageNotFound
from buildlib.rootfs import layers
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store
from buildlib.store.usage import read_usages, usage_path
from buildlib.upkeep import cache


def small_image(store: Store, name: str, data: bytes) -> tuple[str, list[Path]]:
    """A one-layer image named `name`; its manifest digest and its three blob paths."""
    layer = store_layer(store, [M("payload", data=data)])
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
    digest = store.write_image(ImageRef.parse(name), config, [(layer.digest, layer.size, layer.media_type)])
    return digest, [store.blob_path(blob) for blob in cache.image_blobs(store, digest)]


@pytest.fixture(scope="module")
def own_build(tmp_path_factory: pytest.TempPathFactory, debs_dir: Path) -> Built:
    """minimal.yml built into a store of this module's own, which gc may clean as it likes. Under xdist
    each worker that runs these tests has its own (a module fixture, in the worker's temp folder)."""
    root = tmp_path_factory.mktemp("gc")
    return build(SPECS / "minimal.yml", new_cache(root / "cache", debs_dir), root / "out")


def test_build_writes_a_usage_record(minimal_build: Built) -> None:
    records = {record.spec: record for _, record in read_usages(minimal_build.cache)}
    record = records["minimal"]
    assert str((SPECS / "minimal.yml").resolve()) in record.spec_files
    assert any("distrokit/kernel" in use.ref for use in record.images)
    assert record.segments and all((minimal_build.cache / name).is_file() for name in record.files)
    store = Store(minimal_build.cache)
    assert all(store.has_blob(blob) for blob in record.blobs)


def test_ls_names_the_spec_that_uses_an_image(minimal_build: Built) -> None:
    # the shared store may also hold the arm64 components (tagged KEY-arm64): these are amd64's
    rows = {row.name.split(":")[0]: row for row in cache.ls(minimal_build.cache) if not row.name.endswith("-arm64")}
    for name in ("distrokit/kernel", "distrokit/init"):
        assert "minimal" in rows[name].used_by
        assert rows[name].complete and rows[name].size > 0 and rows[name].last_used


def test_du_sums_the_areas(minimal_build: Built) -> None:
    usage = cache.du(minimal_build.cache)
    sizes = {area.area: area.size for area in usage.areas}
    assert set(sizes) == {"blobs", "layers", "segments", "kernels", "debs", "tools", "build", "components", "other"}
    assert sizes["kernels"] > 0  # one kernel binary, shared by every spec with that kernel
    assert sizes["blobs"] > 0 and sizes["segments"] > 0
    assert usage.total == sum(sizes.values())


def sparse_disk(path: Path, written: int) -> Path:
    """A 1 GiB disk image with `written` bytes of data: sparse, as a stage's disk is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(1 << 30)
        handle.write(os.urandom(written))
    return path


def test_du_counts_a_sparse_disk_by_what_it_holds(tmp_path: Path) -> None:
    disk = sparse_disk(tmp_path / "store" / "build" / "state" / "disk.img", 3 << 20)
    sizes = {area.area: area.size for area in cache.du(tmp_path / "store").areas}
    assert disk.stat().st_size == 1 << 30
    assert 3 << 20 <= sizes["build"] < 8 << 20  # it said 1 GiB


def test_gc_keep_counts_a_sparse_disk_by_what_it_holds(tmp_path: Path) -> None:
    root = tmp_path / "store"
    sparse_disk(root / "build" / "gone" / "disk.img", 1 << 20)
    report = cache.gc(root, keep=0)
    removed = {item.path: item.size for item in report.removed}
    assert 1 << 20 <= removed["build/gone"] < 4 << 20
    assert report.size_before < 4 << 20 and report.freed >= 1 << 20


def test_gc_leaves_the_temp_files_of_a_process_that_still_writes(tmp_path: Path) -> None:
    """A monorepo's `doit` writes the store without its lock: gc must not pull a file from under it."""
    root = tmp_path / "store"
    (root / "segments").mkdir(parents=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    writing = subprocess.Popen(["sleep", "60"])
    try:
        names = [f".k.cpio.z.{writing.pid}.abc123.tmp", f".k.cpio.z.{gone.pid}.abc123.tmp", ".k.cpio.z.abc123.tmp"]
        for name in names:
            (root / "segments" / name).write_bytes(b"half")
        removed = {item.path for item in cache.gc(root).removed}
        assert removed == {f"segments/{name}" for name in names[1:]}
        assert (root / "segments" / names[0]).is_file()
    finally:
        writing.kill()
        writing.wait()
    assert {item.path for item in cache.gc(root).removed} == {f"segments/{names[0]}"}


def test_gc_keeps_what_a_build_uses_and_the_next_build_runs_nothing(own_build: Built) -> None:
    record = dict((r.spec, r) for _, r in read_usages(own_build.cache))["minimal"]
    leftover = own_build.cache / "segments" / ".half.cpio.z.x1.tmp"
    leftover.write_bytes(b"killed mid-write")
    report = cache.gc(own_build.cache)
    assert "segments/.half.cpio.z.x1.tmp" in {item.path for item in report.removed}
    store = Store(own_build.cache)
    assert all(store.has_blob(blob) for blob in record.blobs)
    assert all((own_build.cache / name).is_file() for name in record.files)
    again = build(SPECS / "minimal.yml", own_build.cache, own_build.out_dir)
    assert again.report.executed == ()


def test_gc_removes_the_blobs_of_an_image_no_name_reaches(own_build: Built) -> None:
    store = Store(own_build.cache)
    _, old_blobs = small_image(store, "localhost/gc/retagged:1", b"old contents")
    _, new_blobs = small_image(store, "localhost/gc/retagged:1", b"new contents")  # the name moves on
    old_size = sum(path.stat().st_size for path in old_blobs)
    report = cache.gc(own_build.cache)
    assert not any(path.exists() for path in old_blobs)
    assert all(path.exists() for path in new_blobs)
    assert report.freed >= old_size
    assert {p.relative_to(own_build.cache).as_posix() for p in old_blobs} <= {r.path for r in report.removed}


def test_rm_then_gc_frees_the_blobs(own_build: Built) -> None:
    store = Store(own_build.cache)
    digest, blobs = small_image(store, "localhost/gc/dropped:1", b"x" * 50_000)
    cache.gc(own_build.cache)
    assert all(path.exists() for path in blobs), "a name keeps its blobs"
    assert cache.rm(own_build.cache, "localhost/gc/dropped:1") == digest
    assert store.lookup(ImageRef.parse("localhost/gc/dropped:1")) is None
    report = cache.gc(own_build.cache)
    assert not any(path.exists() for path in blobs)
    assert report.freed >= 50_000
    with pytest.raises(ImageNotFound, match="cache ls"):
        cache.rm(own_build.cache, "localhost/gc/dropped:1")


def test_gc_keep_removes_least_recently_used_first_and_stops(own_build: Built) -> None:
    root = own_build.cache
    store = Store(root)
    cache.gc(root)  # start from a store with no garbage
    groups = []
    for age, name in enumerate(("oldest", "middle", "newest"), start=1):
        _, blobs = small_image(store, f"localhost/gc/{name}:1", name.encode() * 20_000)
        cache.rm(root, f"localhost/gc/{name}:1")
        for path in blobs:
            os.utime(path, (age * 1000, age * 1000))
        groups.append(blobs)
    oldest_size = sum(cache.on_disk(path.stat()) for path in groups[0])  # gc and du count allocated blocks
    keep = cache.du(root).total - oldest_size
    report = cache.gc(root, keep=keep)
    assert not any(path.exists() for path in groups[0])
    assert all(path.exists() for blobs in groups[1:] for path in blobs)
    assert report.size_after <= keep < report.size_before
    cache.gc(root)
    assert not any(path.exists() for blobs in groups for path in blobs)


def test_gc_forgets_a_spec_whose_files_are_gone(own_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    built = build(spec_copy, own_build.cache, tmp_path / "out", name="vanishing")
    assert usage_path(built.cache, built.state).is_file()
    spec_copy.unlink()
    report = cache.gc(own_build.cache)
    assert report.stale_records == ("vanishing",)
    assert not usage_path(built.cache, built.state).exists()
    assert not built.state_dir.exists()
    assert usage_path(built.cache, own_build.state).is_file()


def test_export_then_import_gives_the_same_digest(tmp_path: Path) -> None:
    source = Store(tmp_path / "a")
    digest, _ = small_image(source, "localhost/moved/image:3", b"travelling bytes")
    archive = tmp_path / "image.tar"
    assert cache.export_image(source.root, "localhost/moved/image:3", archive) == digest
    assert cache.archive_kind(archive) == ("oci-archive", "localhost/moved/image:3")
    ref, imported = cache.import_image(tmp_path / "b", archive)
    assert (str(ref), imported) == ("localhost/moved/image:3", digest)
    assert Store(tmp_path / "b").lookup(ref) == digest
    renamed, again = cache.import_image(tmp_path / "c", archive, "other/name:1")
    assert again == digest and Store(tmp_path / "c").lookup(renamed) == digest


def test_export_and_import_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFound, match="cache ls"):
        cache.export_image(tmp_path / "empty", "localhost/absent:1", tmp_path / "x.tar")
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello")
    with pytest.raises(BadInput, match="oci-archive"):
        cache.import_image(tmp_path / "empty", not_tar)


@pytest.mark.parametrize(("text", "size"), [("4096", 4096), ("500M", 500 << 20), ("2G", 2 << 30), ("1.5KiB", 1536)])
def test_parse_size(text: str, size: int) -> None:
    assert cache.parse_size(text) == size


def test_parse_size_rejects_nonsense() -> None:
    with pytest.raises(BadInput, match="500M"):
        cache.parse_size("lots")


def test_cli_cache_commands_print_plain_tables(minimal_build: Built, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--cache", str(minimal_build.cache), "cache", "ls"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split("\t") == ["image", "digest", "size", "last used", "used by"]
    assert any("distrokit/init" in line and "minimal" in line for line in lines[1:])
    assert cli.main(["--cache", str(minimal_build.cache), "cache", "du"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("total\t")
    assert cli.main(["--cache", str(minimal_build.cache), "cache", "gc", "--keep", "many"]) == 2


def test_gc_never_leaves_an_index_whose_layer_copy_it_removed(own_build: Built) -> None:
    root = own_build.cache
    store = Store(root)
    cache.gc(root)
    layer = store_layer(store, [M("big", data=os.urandom(200_000))], compress=True)
    index = layers.ensure_index(store, layer)
    copy = layers.uncompressed_path(store, layer)
    os.utime(copy, (1000, 1000))  # the copy is the least recently used entry; the index is newer
    report = cache.gc(root, keep=cache.du(root).total - copy.stat().st_size)
    assert not copy.exists() and not index.exists()
    assert {copy.relative_to(root).as_posix(), index.relative_to(root).as_posix()} <= {r.path for r in report.removed}


def test_the_kernel_binary_is_stored_once_per_kernel_image(own_build: Built, tmp_path: Path) -> None:
    second = build(SPECS / "minimal.yml", own_build.cache, tmp_path, name="second")
    kernels = list((own_build.cache / "kernels").iterdir())
    assert len(kernels) == 1  # one copy for both specs (it was one 14 MB copy per spec)
    assert kernels[0].read_bytes() == (second.out_dir / "second-kernel").read_bytes()
    for built in (own_build, second):
        assert (built.state_dir / "kernel.ref").read_text() == kernels[0].name
        assert not list(built.state_dir.glob("kernel-*"))
    cache.gc(own_build.cache)
    assert kernels[0].is_file()  # a spec's last build keeps its kernel


def test_ls_names_users_by_the_reference_they_used(own_build: Built) -> None:
    store = Store(own_build.cache)
    init = next(ref for ref, _ in store.names() if ref.path == "distrokit/init")
    store.set_ref(ImageRef.parse("localhost/copy/init:1"), store.lookup(init) or "")
    rows = {row.name: row for row in cache.ls(own_build.cache)}
    assert "minimal" in rows[init.familiar()].used_by
    assert rows["localhost/copy/init:1"].used_by == ()  # same digest, but no spec named it
    cache.rm(own_build.cache, "localhost/copy/init:1")


def test_gc_keep_speaks_the_unit_typed_and_says_what_holds_the_space(
    own_build: Built, capsys: pytest.CaptureFixture[str]
) -> None:
    pins = own_build.cache / "components"
    (pins / "gone-0123456789abcdef.json").write_text("[]")  # the pin of a recipe that no longer exists
    kept = sorted(path.name for path in pins.iterdir() if not path.name.startswith("gone-"))
    assert cli.main(["--cache", str(own_build.cache), "cache", "gc", "--keep", "1M"]) == 0
    err = capsys.readouterr().err
    assert "MiB" in err and " MB" not in err and "asked for at most 1.00 MiB" in err
    assert "what holds the rest" in err and "spec minimal (its last build)" in err
    assert sorted(path.name for path in pins.iterdir()) == kept
