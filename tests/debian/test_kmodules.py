"""buildlib.debian.kmodules: a kernel component keeps the modules its recipe names, their closure and firmware."""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from conftest import COMPONENTS, Built, new_cache

from buildlib.debian import archive, kmodules, recipes
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


def test_depmods_files_are_put_in_modules_order_a_modules_own_lines_kept_in_theirs(tmp_path: Path) -> None:
    (tmp_path / "modules.order").write_text("kernel/b/zed.ko\nkernel/a/alpha-one.ko\nkernel/c/mid.ko\n")
    (tmp_path / "modules.dep").write_text(
        "kernel/c/mid.ko: kernel/b/zed.ko\nextra/outside.ko:\nkernel/a/alpha-one.ko:\nkernel/b/zed.ko:\n"
    )
    (tmp_path / "modules.alias").write_text(
        "alias pci:v2* mid\nalias dev-z zed\nalias pci:v1* mid\nalias dev-a alpha_one\n"
    )
    kmodules.in_module_order(tmp_path)
    assert (tmp_path / "modules.dep").read_text() == (
        "kernel/b/zed.ko:\nkernel/a/alpha-one.ko:\nkernel/c/mid.ko: kernel/b/zed.ko\nextra/outside.ko:\n"
    )
    assert (tmp_path / "modules.alias").read_text() == (
        "alias dev-z zed\nalias dev-a alpha_one\nalias pci:v2* mid\nalias pci:v1* mid\n"
    )
    assert not (tmp_path / "modules.symbols").exists()  # a file depmod did not write stays unwritten


def _modules_tree(root: Path, numbers: list[int], version: str) -> Path:
    """Fake modules (busybox depmod reads their modinfo strings) in 60 folders, made in `numbers`' order."""
    tree = root / "lib" / "modules" / version
    for number in numbers:
        folder = tree / "kernel" / f"d{number % 60}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"m{number}.ko").write_bytes(b"\x7fELF\x00license=GPL\x00alias=dev-%d\x00" % number)
    (tree / "modules.order").write_text("".join(f"kernel/d{n % 60}/m{n}.ko\n" for n in sorted(numbers)))
    return tree


def test_busybox_depmod_writes_the_same_files_whatever_order_the_folders_are_listed_in() -> None:
    # a tmpfs lists a folder newest first: two trees made in opposite orders are listed in opposite
    # orders (ext4 lists by a hash seeded per file system: the same names, another disk, another order)
    if not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm: no file system here whose listing order the test can choose")
    version = "6.1.0-test"
    numbers = list(range(1, 301))
    with tempfile.TemporaryDirectory(dir="/dev/shm") as scratch:
        made = [Path(scratch) / name for name in ("forward", "backward")]
        raw = []
        for root, order in zip(made, (numbers, numbers[::-1]), strict=True):
            tree = _modules_tree(root, order, version)
            subprocess.run(["busybox", "depmod", "-b", str(root), version], check=True)
            raw.append([(tree / name).read_bytes() for name in kmodules.DEPMOD_FILES])
        assert raw[0] != raw[1]  # busybox alone follows the listing order
        written = []
        for root in made:
            kmodules.depmod(root, version)
            written.append([(root / "lib/modules" / version / name).read_bytes() for name in kmodules.DEPMOD_FILES])
        assert written[0] == written[1]
        dep_lines = written[0][0].decode().splitlines()
        assert [line.split(":")[0] for line in dep_lines] == [f"kernel/d{n % 60}/m{n}.ko" for n in numbers]


def _unpacked_kernel(store: Store, arch: str, into: Path) -> tuple[Path, str]:
    """The kernel component's package unpacked (fetched into the store's debs/ when missing)."""
    recipe = recipes.load_recipe(COMPONENTS / "kernel", arch)
    packages = archive.pinned_packages(store.root, recipe)
    (deb,) = [path for path in archive.fetch_packages(store, packages, arch=arch) if "linux-image" in path.name]
    subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)
    (version,) = [path.name for path in (into / "lib" / "modules").iterdir()]
    return into, version


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_modinfo_names_what_depmod_finds(tmp_path: Path, debs_dir: Path, arch: str) -> None:
    """Each module's own `depends=` gives, for every module of Debian's kernel, the closure busybox depmod
    gives from the modules' symbols: the kept set, and so the kernel image, are the same either way."""
    root, version = _unpacked_kernel(Store(new_cache(tmp_path / "store", debs_dir), arch), arch, tmp_path / "root")
    tree = root / "lib" / "modules" / version
    direct = kmodules.modinfo_dependencies(tree)
    assert direct is not None and len(direct) > 900
    kmodules.depmod(root, version)
    by_symbols = kmodules.read_dependencies(tree / "modules.dep")
    assert set(direct) == set(by_symbols)
    assert all(kmodules.closure(direct, [module]) == kmodules.closure(by_symbols, [module]) for module in direct)


@pytest.mark.parametrize("name", ["plain.ko.xz", "notelf.ko"])
def test_a_module_modinfo_cannot_be_read_from_is_left_to_depmod(tmp_path: Path, name: str) -> None:
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / name).write_bytes(b"\x7fELF\x00license=GPL\x00depends=\x00")
    assert kmodules.modinfo_dependencies(tmp_path) is None
