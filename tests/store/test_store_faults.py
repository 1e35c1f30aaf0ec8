"""The store under faults: flipped bits are found by `cache check` and removed by `--repair`, a build
never uses a bad entry, and a full disk gives one clear line, no half-written entry, and a good build
once space is freed."""

from __future__ import annotations

import contextlib
import random
import subprocess
from pathlib import Path

import pytest
from conftest import mounted_tmpfs
from layerkit import M, store_layer

from buildlib import cli
from buildlib.rootfs import layers
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store
from buildlib.upkeep.check import check

SPEC = """kernel:
  image: localhost/kern:1
  cmdline: console=ttyS0
  tar: none
onboot:
  - name: app
    image: localhost/app:1
files:
  - path: etc/motd
    contents: hello
"""


def add_image(store: Store, name: str, members: list[M], compress: bool = True) -> None:
    layer = store_layer(store, members, compress=compress)
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
    config["config"] = {"Entrypoint": ["/bin/app"]}
    store.write_image(ImageRef.parse(name), config, [(layer.digest, layer.size, layer.media_type)])


def fill(store: Store, app_bytes: int = 200_000) -> None:
    add_image(store, "localhost/kern:1", [M("kernel", data=b"KERNEL" * 1000)], compress=False)
    add_image(store, "localhost/app:1", [M("bin/app", data=random.Random(app_bytes).randbytes(app_bytes), mode=0o755)])


def build(cache: Path, spec: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["--cache", str(cache), "build", "-q", str(spec), "--dir", str(out)])
    return code, capsys.readouterr().err


def flip(path: Path, offset: int = -40) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.chmod(0o644)
    path.write_bytes(bytes(data))


@pytest.fixture()
def built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path, bytes]:
    cache = tmp_path / "cache"
    fill(Store(cache))
    spec = tmp_path / "s.yml"
    spec.write_text(SPEC)
    code, err = build(cache, spec, tmp_path / "out", capsys)
    assert code == 0, err
    return cache, spec, (tmp_path / "out" / "s-initrd.img").read_bytes()


def test_a_sound_store_checks_clean(built, capsys) -> None:
    cache, _, _ = built
    report = check(cache)
    assert report.bad == () and report.checked >= 8
    assert cli.main(["--cache", str(cache), "cache", "check"]) == 0


@pytest.mark.parametrize("area", ["blob", "tar", "index", "segment"])
def test_a_flipped_bit_is_found_repaired_and_never_used(built, area: str, tmp_path: Path, capsys) -> None:
    cache, spec, initrd = built
    store = Store(cache)
    if area == "blob":
        victim = store.blob_path(store.image(ImageRef.parse("localhost/app:1")).layers[0].digest)
    elif area == "tar":
        victim = next((cache / "layers").glob("*.tar"))
    elif area == "index":
        victim = next((cache / "layers").glob("*.index"))
    else:
        victim = max((cache / "segments").glob("*.cpio.z"), key=lambda p: p.stat().st_size)
    flip(victim)

    assert cli.main(["--cache", str(cache), "cache", "check"]) == 1
    err = capsys.readouterr().err
    assert f"bad: {victim.relative_to(cache).as_posix()}" in err

    if area == "segment":  # an output written from it refuses it, in one line
        code, err = build(cache, spec, tmp_path / "out2", capsys)
        assert code == 1 and victim.name in err and "cache check --repair" in err
        assert not (tmp_path / "out2" / "s-initrd.img").exists()

    assert cli.main(["--cache", str(cache), "cache", "check", "--repair"]) == 0
    assert not victim.exists()
    assert check(cache).bad == ()
    if area == "blob":  # the blob came from nowhere but this store: give it back, as a pull would
        fill(store)
    code, err = build(cache, spec, tmp_path / "out3", capsys)
    assert code == 0, err
    assert (tmp_path / "out3" / "s-initrd.img").read_bytes() == initrd
    assert check(cache).bad == ()


def test_segments_of_a_store_from_before_keys_are_written_again(built, tmp_path: Path, capsys) -> None:
    """A store whose segments carry no key files (written before they had them) builds, not refuses."""
    cache, spec, initrd = built
    for key_file in (cache / "segments").glob("*.xxh"):
        key_file.unlink()
    code, err = build(cache, spec, tmp_path / "out2", capsys)
    assert code == 0, err
    assert (tmp_path / "out2" / "s-initrd.img").read_bytes() == initrd
    assert check(cache).bad == ()


def test_a_changed_tar_under_an_index_is_never_read(built, tmp_path: Path, capsys) -> None:
    """A decompressed layer that changed is made again from its blob, not streamed into the initrd."""
    cache, spec, initrd = built
    tar = next((cache / "layers").glob("*.tar"))
    flip(tar, 2000)
    for path in [*(cache / "segments").glob("*"), *(cache / "build").glob("*/*.segment")]:
        path.unlink()  # the parts must be written again, from the layers
    code, err = build(cache, spec, tmp_path / "again", capsys)
    assert code == 0, err
    assert (tmp_path / "again" / "s-initrd.img").read_bytes() == initrd


def test_an_index_that_changed_is_made_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    layer = store_layer(store, [M("a", data=b"1"), M("b", data=b"2")])
    path = layers.ensure_index(store, layer)
    path.write_bytes(path.read_bytes().replace(b'"b"', b'"c"'))
    assert {e.path for e in layers.load_index(store, layer)} == {"a", "b"}


# a full disk --------------------------------------------------------------------------------------
def small_disk(where: Path, size: str) -> contextlib.AbstractContextManager[Path]:
    return mounted_tmpfs(where, f"size={size}")


def grow(disk: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(disk)], check=True)


def leftovers(cache: Path) -> list[str]:
    return [p.name for p in cache.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")]


@pytest.mark.parametrize("stage", ["layer", "segment", "output"])
def test_a_full_disk_is_one_line_keeps_nothing_half_written_and_heals(tmp_path: Path, capsys, stage: str) -> None:
    with small_disk(tmp_path / "disk", "64m") as disk:
        cache = disk / "cache"
        store = Store(cache)
        # random bytes do not compress: the layer blob, its tar, its segment and the initrd are ~2 MiB each
        fill(store, app_bytes=2 << 20)
        spec = tmp_path / "s.yml"
        spec.write_text(SPEC)
        out = disk / "out" if stage == "output" else tmp_path / "out"
        used = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
        room = {"layer": 1 << 20, "segment": (5 << 20) // 2, "output": 5 << 20}[stage]
        grow(disk, str(used + room + (256 << 10)))
        code, err = build(cache, spec, out, capsys)
        assert code == 1, err
        assert "no space left" in err and "MiB" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err
        assert leftovers(cache) == [] and not (out / "s-initrd.img").exists()
        assert check(cache).bad == ()
        grow(disk, "64m")
        code, err = build(cache, spec, out, capsys)
        assert code == 0, err
        assert (out / "s-initrd.img").is_file() and check(cache).bad == ()


def test_a_pull_into_a_full_disk(tmp_path: Path, capsys) -> None:
    source = Store(tmp_path / "src")
    add_image(source, "localhost/app:1", [M("bin/app", data=random.Random(3).randbytes(3 << 20))])
    from buildlib.upkeep import cache as cache_module

    archive = tmp_path / "app.tar"
    cache_module.export_image(source.root, "localhost/app:1", archive)
    with small_disk(tmp_path / "disk", "1m") as disk:
        cache = disk / "cache"
        code = cli.main(["--cache", str(cache), "pull", "-q", f"oci-archive:{archive}", "--name", "localhost/app:1"])
        err = capsys.readouterr().err
        assert code == 1 and "no space left" in err and "MiB" in err and "Traceback" not in err, err
        assert Store(cache).lookup(ImageRef.parse("localhost/app:1")) is None
        grow(disk, "64m")
        code = cli.main(["--cache", str(cache), "pull", "-q", f"oci-archive:{archive}", "--name", "localhost/app:1"])
        assert code == 0, capsys.readouterr().err
        assert check(cache).bad == ()
