"""buildlib.components: images from Debian packages, deterministic, recorded in the store."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import COMPONENTS, new_cache

from buildlib import components, layers
from buildlib.errors import ComponentError
from buildlib.images import Store
from buildlib.rootfs import merged_image_tree


@pytest.fixture(scope="module")
def init_recipe() -> components.Recipe:
    return components.load_recipe(COMPONENTS / "init")


def build_init(cache: Path, recipe: components.Recipe) -> tuple[Store, str]:
    store = Store(cache)
    packages = components.pinned_packages(cache, recipe)
    return store, components.build(store, recipe, packages)


def test_same_debs_and_recipe_give_the_same_digest(tmp_path: Path, debs_dir: Path, init_recipe) -> None:
    _, first = build_init(new_cache(tmp_path / "a", debs_dir), init_recipe)
    _, second = build_init(new_cache(tmp_path / "b", debs_dir), init_recipe)
    assert first == second


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
    packages = json.loads(image.labels[components.PACKAGES_LABEL])
    assert [name for name, *_ in packages] == ["busybox-static"]
    assert all(len(sha) == 64 and arch == "amd64" for _, _, sha, arch in packages)  # each .deb's architecture
    assert all(entry.uid == 0 and entry.gid == 0 and entry.mtime == 0 for entry in tree.entries())


def test_tag_is_the_recipe_content(tmp_path: Path, init_recipe) -> None:
    copy = tmp_path / "init"
    shutil.copytree(init_recipe.folder, copy, symlinks=True)
    assert components.load_recipe(copy).ref == init_recipe.ref
    (copy / "os-release").write_text("NAME=changed\n")
    assert components.load_recipe(copy).ref != init_recipe.ref


def test_missing_recipe_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ComponentError, match="component.yml"):
        components.load_recipe(tmp_path)


def test_unknown_recipe_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "component.yml").write_text("name: x\npackges: [busybox-static]\n")
    with pytest.raises(ComponentError, match="packges"):
        components.load_recipe(tmp_path)
