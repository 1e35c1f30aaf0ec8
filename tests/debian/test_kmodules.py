"""buildlib.debian.kmodules: a kernel component keeps the modules its recipe names, their closure and firmware."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from conftest import COMPONENTS, Built

from buildlib.debian import kmodules, recipes
from buildlib.errors import ComponentError
from buildlib.rootfs.parts import merged_image_tree
from buildlib.store.images import Store

GRAPH = {
    "kernel/drivers/block/virtio_blk.ko": ("kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"),
    "kernel/drivers/virtio/virtio.ko": ("kernel/drivers/virtio/virtio_ring.ko",),
    "kernel/drivers/virtio/virtio_ring.ko": (),
    "kernel/drivers/char/hw_random/virtio-rng.ko": ("kernel/drivers/virtio/virtio.ko",),
    "kernel/fs/overlayfs/overlay.ko": (),
    "kernel/drivers/net/e1000.ko": (),
}


def test_module_names_ignore_suffix_and_dashes() -> None:
    assert kmodules.module_name("kernel/drivers/char/hw_random/virtio-rng.ko") == "virtio_rng"
    assert kmodules.module_name("kernel/fs/erofs/erofs.ko.xz") == "erofs"


def test_closure_follows_modules_dep() -> None:
    chosen = kmodules.matching(GRAPH, ["virtio_blk"], "recipe")
    assert kmodules.closure(GRAPH, chosen) == {
        "kernel/drivers/block/virtio_blk.ko",
        "kernel/drivers/virtio/virtio.ko",
        "kernel/drivers/virtio/virtio_ring.ko",
    }


def test_globs_names_and_paths() -> None:
    assert kmodules.matching(GRAPH, ["virtio*"], "r") == {p for p in GRAPH if "/virtio" in p}
    assert kmodules.matching(GRAPH, ["virtio-rng"], "r") == {"kernel/drivers/char/hw_random/virtio-rng.ko"}
    assert kmodules.matching(GRAPH, ["kernel/fs/*"], "r") == {"kernel/fs/overlayfs/overlay.ko"}


def test_a_pattern_naming_nothing_is_an_error_naming_it() -> None:
    with pytest.raises(ComponentError, match=r"component.yml: modules: 'virtio_blck' names no module"):
        kmodules.matching(GRAPH, ["virtio_blk", "virtio_blck"], "component.yml")


def test_firmware_fields_are_read_from_modinfo(tmp_path: Path) -> None:
    module = tmp_path / "m.ko"
    module.write_bytes(b"\x7fELF junk\x00license=GPL\x00firmware=acme/fw-1.bin\x00firmware=acme/fw-2.bin\x00x")
    assert kmodules.firmware_named(module) == ["acme/fw-1.bin", "acme/fw-2.bin"]


def test_firmware_not_named_is_dropped(tmp_path: Path) -> None:
    firmware = tmp_path / "lib" / "firmware"
    (firmware / "acme").mkdir(parents=True)
    (firmware / "other").mkdir()
    for name in ("acme/fw-1.bin.xz", "acme/fw-3.bin", "other/x.bin"):
        (firmware / name).write_bytes(b"fw")
    module = tmp_path / "m.ko"
    module.write_bytes(b"\x00firmware=acme/fw-1.bin\x00")
    kmodules._keep_firmware(firmware, [module])
    assert sorted(p.relative_to(firmware).as_posix() for p in firmware.rglob("*")) == ["acme", "acme/fw-1.bin.xz"]


def test_recipe_modules_field(tmp_path: Path) -> None:
    (tmp_path / "component.yml").write_text("name: k\nmodules: [virtio*, overlay]\n")
    assert recipes.load_recipe(tmp_path).modules == ("virtio*", "overlay")
    (tmp_path / "component.yml").write_text("name: k\nmodules: all\n")
    assert recipes.load_recipe(tmp_path).modules == (kmodules.ALL,)
    (tmp_path / "component.yml").write_text("name: k\nmodules: virtio\n")
    with pytest.raises(ComponentError, match="modules: give `all` or a list"):
        recipes.load_recipe(tmp_path)


def _kernel_tar_members(cache: Path, folder: Path) -> dict[str, bytes]:
    store = Store(cache)
    recipe = recipes.load_recipe(folder)
    image = store.image(recipe.ref)
    entry = merged_image_tree(store, image, "kernel").get("kernel.tar")
    assert entry is not None
    with tarfile.open(fileobj=io.BytesIO(entry.read_bytes())) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_default_kernel_keeps_its_list_and_closure_only(minimal_build: Built) -> None:
    members = _kernel_tar_members(minimal_build.cache, COMPONENTS / "kernel")
    modules = {kmodules.module_name(name) for name in members if name.endswith(".ko")}
    wanted = {"virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "overlay", "squashfs", "erofs"}
    assert wanted | {"isofs", "sr_mod", "cdrom", "veth", "virtio_ring", "virtio"} <= modules
    assert "e1000" not in modules and "btrfs" not in modules and len(modules) < 60
    dep_file = next(name for name in members if name.endswith("/modules.dep"))
    lines = members[dep_file].decode().splitlines()
    graph = {line.split(":")[0]: tuple(line.split(":")[1].split()) for line in lines if ":" in line}
    prefix = dep_file.rsplit("/", 1)[0] + "/"
    assert {prefix + path for path in graph} == {name for name in members if name.endswith(".ko")}
    assert all(prefix + need in members for needs in graph.values() for need in needs)
