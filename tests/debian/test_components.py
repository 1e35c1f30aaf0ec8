"""buildlib.debian.components: images from Debian packages, deterministic, recorded in the store."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import COMPONENTS, mounted_tmpfs, new_cache

from buildlib.debian import archive, components, recipes
from buildlib.errors import BadInput, BuildError, ComponentError
from buildlib.fsutil import SCRATCH_ENV, memory_scratch, room_in_memory_scratch, store_lock
from buildlib.rootfs import layers
from buildlib.rootfs.parts import merged_image_tree
from buildlib.store.images import Store


@pytest.fixture(scope="module")
def init_recipe() -> recipes.Recipe:
    return recipes.load_recipe(COMPONENTS / "init")


def build_init(cache: Path, recipe: recipes.Recipe) -> tuple[Store, str]:
    store = Store(cache)
    packages = archive.pinned_packages(cache, recipe)
    with store_lock(cache):  # the store may be the shared one: write it as distrokit does, alone
        return store, components.build(store, recipe, packages)


def test_same_debs_and_recipe_give_the_same_digest(tmp_path: Path, debs_dir: Path, init_recipe) -> None:
    _, first = build_init(new_cache(tmp_path / "a", debs_dir), init_recipe)
    _, second = build_init(new_cache(tmp_path / "b", debs_dir), init_recipe)
    assert first == second


def test_a_kernel_unpacked_in_memory_is_the_image_unpacked_in_the_store(
    tmp_path: Path, debs_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the default scratch (/dev/shm, a tmpfs) lists folders in another order than the store's disk: the
    # kernel's depmod files once followed that order
    recipe = recipes.load_recipe(COMPONENTS / "kernel")
    made_in: list[Path] = []
    scratch_tree = Store.scratch_tree

    @contextlib.contextmanager
    def noted(self: Store, prefix: str, needed: int) -> Iterator[Path]:
        with scratch_tree(self, prefix, needed) as tree:
            made_in.append(tree.parent)
            yield tree

    monkeypatch.setattr(Store, "scratch_tree", noted)
    digests = {}
    for setting in ("store", "memory"):
        if setting == "store":
            monkeypatch.setenv(SCRATCH_ENV, "store")
        else:
            monkeypatch.delenv(SCRATCH_ENV, raising=False)
        cache = new_cache(tmp_path / setting, debs_dir)
        store = Store(cache)
        with store_lock(cache):
            digests[setting] = components.build(store, recipe, archive.pinned_packages(cache, recipe))
            assert not list(store.tmp.iterdir())  # nothing left behind either way
        in_memory = memory_scratch(cache)
        assert in_memory is None or not in_memory.exists()
    assert made_in[0] == tmp_path / "store" / "tmp"
    if made_in[1] == tmp_path / "memory" / "tmp":
        pytest.skip("/dev/shm has no room for the kernel's packages here: both were unpacked in the store")
    assert made_in[1] == memory_scratch(tmp_path / "memory")
    assert digests["store"] == digests["memory"]


def test_init_image_layout(shared_cache: Path, init_recipe) -> None:
    store, digest = build_init(shared_cache, init_recipe)
    assert store.lookup(init_recipe.ref) == digest
    image = store.image(init_recipe.ref)
    tree = merged_image_tree(store, image, "init")
    init = tree.get("init")
    assert init is not None and init.mode == 0o755 and init.read_bytes().startswith(b"#!/bin/busybox sh")
    sh = tree.get("bin/sh")
    assert sh is not None and (sh.kind, sh.link) == (layers.SYMLINK, "/bin/busybox")
    assert tree.get("usr/share/doc") is None
    tmp = tree.get("tmp")
    assert tmp is not None and tmp.mode == 0o1777
    packages = json.loads(image.labels[recipes.PACKAGES_LABEL])
    assert [name for name, *_ in packages] == ["busybox-static"]
    assert all(len(sha) == 64 and arch == "amd64" for _, _, sha, arch in packages)  # each .deb's architecture
    assert all(entry.uid == 0 and entry.gid == 0 and entry.mtime == 0 for entry in tree.entries())


def test_tag_is_the_recipe_content(tmp_path: Path, init_recipe) -> None:
    copy = tmp_path / "init"
    shutil.copytree(init_recipe.folder, copy, symlinks=True)
    assert recipes.load_recipe(copy).ref == init_recipe.ref
    (copy / "os-release").write_text("NAME=changed\n")
    assert recipes.load_recipe(copy).ref != init_recipe.ref


def test_missing_recipe_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="component.yml"):
        recipes.load_recipe(tmp_path)


def test_unknown_recipe_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "component.yml").write_text("name: x\npackges: [busybox-static]\n")
    with pytest.raises(ComponentError, match="packges"):
        recipes.load_recipe(tmp_path)


@pytest.mark.parametrize(
    ("recipe", "where"),
    [
        (
            "name: x\npackges: [busybox-static]\n",
            r"component.yml:2:1: packges: unknown key \(did you mean 'packages'\?\)",
        ),
        (
            "name: x\nfiles:\n  - {path: /a, contents: hi, mod: '0600'}\n",
            r"component.yml:3:30: files\[0\].mod: unknown key \(did you mean .mode.\?\)",
        ),
        ("name: x\nconfig:\n  workingdir: /\n", r"component.yml:3:3: config.workingdir: unknown key"),
        (
            "name: x\nconfig:\n  moby:\n    capabilites: [all]\n",
            r"component.yml:4:5: config.moby.capabilites: unknown key",
        ),
        (
            "name: x\nconfig:\n  moby:\n    readonly: maybe\n",
            r"component.yml:4:15: config.moby.readonly: expected a boolean",
        ),
        ("name: x\nconfig:\n  moby:\n    name: y\n", r"component.yml:4:5: config.moby.name: cannot be set"),
        ("name: x\nlayout: kernal\n", r"component.yml:2:9: layout: expected one of root, kernel"),
        ("name: x\nkeep: bin/sh\n", r"component.yml:2:7: keep: expected a list"),
        ("name: x\nfiles:\n  - {path: /a, source: nowhere}\n", r"files\[0\].source: nowhere: no such file"),
        (
            "name: x\nfiles:\n  - {path: /a, source: component.yml, contents: b}\n",
            r"give one of .*not source and contents",
        ),
        ("name: x\nfiles:\n  - {mode: '0644'}\n", r"files\[0\]: missing required key 'path'"),
    ],
)
def test_a_recipe_mistake_names_its_line_and_field(tmp_path: Path, recipe: str, where: str) -> None:
    (tmp_path / "component.yml").write_text(recipe)
    with pytest.raises(ComponentError, match=where):
        recipes.load_recipe(tmp_path)


def test_every_mistake_of_a_recipe_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "component.yml").write_text("name: x\nfollow: 3\nconfig:\n  cwd: /\n  moby: {netw: host}\n")
    with pytest.raises(ComponentError) as error:
        recipes.load_recipe(tmp_path)
    assert [line.split(": ")[1] for line in str(error.value).splitlines()] == [
        "follow",
        "config.cwd",
        "config.moby.netw",
    ]


def test_every_component_recipe_of_ours_passes_the_schema() -> None:
    for folder in sorted(p for p in COMPONENTS.iterdir() if (p / "component.yml").is_file()):
        recipes.load_recipe(folder)


def test_every_component_image_config_has_a_path() -> None:
    """A spec's `command: ["sh", "-c", ...]` needs PATH in the image's Env, as Docker Hub's images have it:
    the config each of our recipes gets, and a recipe's own PATH or other variables kept as given."""
    for folder in sorted(p for p in COMPONENTS.iterdir() if (p / "component.yml").is_file()):
        recipe = recipes.load_recipe(folder)
        env = components._image_config(recipe, [], diff_id="sha256:" + "0" * 64)["config"]["Env"]
        paths = [item for item in env if item.startswith("PATH=")]
        assert len(paths) == 1 and "/bin" in paths[0].split("=", 1)[1].split(":"), (folder.name, env)
    assert components.with_default_path(["A=1"]) == [components.DEFAULT_PATH, "A=1"]
    assert components.with_default_path(["PATH=/opt", "A=1"]) == ["PATH=/opt", "A=1"]


def test_a_misspelled_moby_field_fails_validate_naming_the_recipe(tmp_path: Path) -> None:
    from buildlib.spec.model import load_spec

    folder = tmp_path / "components" / "bad"
    folder.mkdir(parents=True)
    (folder / "component.yml").write_text(
        "name: bad\npackages: [busybox-static]\nconfig:\n  moby:\n    bindz: [/a:/a]\n"
    )
    spec = tmp_path / "spec.yml"
    spec.write_text('onboot:\n  - name: bad\n    image: "@pkg:components/bad"\n')
    with pytest.raises(BadInput, match=r"component.yml:5:5: config.moby.bindz: unknown key \(did you mean 'binds'\?\)"):
        load_spec([spec], resolve_pkg=recipes.PkgResolver())


def test_every_missing_library_is_named_at_once_with_its_package(tmp_path: Path, debs_dir: Path) -> None:
    """`depends: false` takes htop alone: one run names all it lacks, each with the package to add."""
    folder = tmp_path / "htop"
    folder.mkdir()
    (folder / "component.yml").write_text("name: htop\npackages: [htop]\ndepends: false\nkeep: [usr/bin/htop]\n")
    recipe = recipes.load_recipe(folder)
    store = Store(new_cache(tmp_path / "cache", debs_dir))
    with pytest.raises(ComponentError) as error:
        components.build(store, recipe, archive.resolve_packages(recipe))
    message = str(error.value)
    assert "usr/bin/htop needs libncursesw.so.6 (Debian package libncursesw6)" in message
    assert "usr/bin/htop needs libtinfo.so.6 (Debian package libtinfo6)" in message
    assert message.splitlines()[0].startswith("missing libraries, add ") and "libtinfo6" in message.splitlines()[0]


def test_a_one_line_recipe_takes_the_dependency_closure_from_apt(tmp_path: Path) -> None:
    (tmp_path / "component.yml").write_text("name: t\npackages: [htop]\n")
    names = {package.name for package in archive.resolve_packages(recipes.load_recipe(tmp_path))}
    assert {"htop", "libncursesw6", "libtinfo6", "libc6", "libnl-3-200"} <= names


@pytest.mark.parametrize("depends", ["", "depends: false\n"])
def test_a_name_debian_lacks_is_said_so_in_words(tmp_path: Path, depends: str) -> None:
    (tmp_path / "component.yml").write_text(f"name: t\npackages: [bash, no-such-package-xyz]\n{depends}")
    with pytest.raises(ComponentError) as raised:
        archive.resolve_packages(recipes.load_recipe(tmp_path))
    message = str(raised.value).removeprefix(str(tmp_path))
    assert "no-such-package-xyz is not in Debian's archive for amd64" in message
    assert "['" not in message  # no Python list
    assert "apt-get update" not in message  # an update cannot fix a wrong name


def test_a_meta_package_debian_lacks_is_named(tmp_path: Path) -> None:
    (tmp_path / "component.yml").write_text("name: t\npackages: [bash]\nfollow: [no-such-meta-xyz]\n")
    with pytest.raises(ComponentError, match=r"follow: no-such-meta-xyz: no-such-meta-xyz is not in Debian's archive"):
        archive.resolve_packages(recipes.load_recipe(tmp_path))


def test_recipes_are_pinned_side_by_side_and_the_first_failure_in_order_is_raised(tmp_path: Path) -> None:
    folders = {}
    for name, package in (("one", "htop"), ("two", "no-such-package-xyz"), ("three", "tree"), ("four", "nano")):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        (folders[name] / "component.yml").write_text(f"name: {name}\npackages: [{package}]\n")
    cache = tmp_path / "cache"
    chosen = [recipes.load_recipe(folders[name]) for name in ("one", "two", "three", "four")]
    with pytest.raises(ComponentError, match=r"two: apt cannot install no-such-package-xyz"):
        archive.pin_all(cache, chosen)
    pinned = {recipe.name: archive.cached_pins(cache, recipe) for recipe in chosen}
    assert pinned["two"] is None
    # the others are pinned (the next build asks apt for none of them), as one by one would pin them
    for recipe in (chosen[0], *chosen[2:]):
        assert pinned[recipe.name] == archive.resolve_packages(recipe)


@pytest.fixture
def noexec_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted noexec, as Docker mounts /dev/shm."""
    with mounted_tmpfs(tmp_path / "noexec", "noexec,size=64m") as folder:
        yield folder


def test_a_scratch_that_runs_no_program_is_not_used_and_the_component_builds(
    noexec_tmpfs: Path, tmp_path: Path, debs_dir: Path, init_recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the init component's busybox is run from its tree to list its applets: from a noexec tmpfs it cannot
    monkeypatch.setenv(SCRATCH_ENV, str(noexec_tmpfs))
    cache = new_cache(tmp_path / "cache", debs_dir)
    assert room_in_memory_scratch(cache, 1) is None
    _, digest = build_init(cache, init_recipe)
    monkeypatch.setenv(SCRATCH_ENV, "store")
    assert build_init(new_cache(tmp_path / "again", debs_dir), init_recipe)[1] == digest


def test_a_store_where_no_program_runs_is_one_clear_error(
    noexec_tmpfs: Path, debs_dir: Path, init_recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SCRATCH_ENV, "store")
    cache = new_cache(noexec_tmpfs / "cache", debs_dir)
    with pytest.raises(BuildError, match=r"cannot run .*/bin/busybox to list its applets .*mounted noexec\?"):
        build_init(cache, init_recipe)
    assert not list((cache / "tmp").iterdir())  # its tree is gone
