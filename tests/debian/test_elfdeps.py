"""A recipe's `keep:`: the runc component is Debian's runc with exactly the libraries it links."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import COMPONENTS

from buildlib.debian import archive, components, elfdeps, recipes
from buildlib.errors import BuildError
from buildlib.fsutil import store_lock
from buildlib.rootfs.layers import DIR
from buildlib.rootfs.tree import merged_image_tree
from buildlib.store.images import Store


def test_runc_component_is_runc_and_exactly_its_libraries(shared_cache: Path) -> None:
    store = Store(shared_cache)
    recipe = recipes.load_recipe(COMPONENTS / "runc")
    with store_lock(shared_cache):  # a writer of the shared store takes its lock, as distrokit's do
        components.build(store, recipe, archive.pinned_packages(store.root, recipe))
    tree = merged_image_tree(store, store.image(recipe.ref), "runc")
    files = {re.sub(r"\.so\.2\.[0-9.]+$", ".so.2.X", e.path) for e in tree.entries() if e.kind != DIR}
    assert files == {
        "usr/sbin/runc",
        "lib64/ld-linux-x86-64.so.2",  # the loader runc names, a link to the next one
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/libseccomp.so.2",  # a link to the next one
        "usr/lib/x86_64-linux-gnu/libseccomp.so.2.X",
    }


HOST_PROGRAMS = ("ls", "cat", "env", "readelf", "dpkg-deb")


def test_one_readelf_for_many_files_says_of_each_what_it_says_alone(tmp_path: Path) -> None:
    rels = []
    for name in HOST_PROGRAMS:
        shutil.copy(shutil.which(name) or name, tmp_path / name)
        rels.append(name)
    together = elfdeps._readelf(tmp_path, rels)
    alone = [elfdeps._readelf(tmp_path, [rel])[0] for rel in rels]
    for text, own in zip(together, alone, strict=True):
        assert elfdeps._NEEDED.findall(text) == elfdeps._NEEDED.findall(own) != []
        assert elfdeps._INTERP.findall(text) == elfdeps._INTERP.findall(own) != []


def test_a_file_readelf_cannot_read_among_many_is_named(tmp_path: Path) -> None:
    shutil.copy(shutil.which("ls") or "ls", tmp_path / "ls")
    (tmp_path / "broken").write_bytes(elfdeps.ELF_MAGIC)  # no more than the magic: readelf fails on it
    with pytest.raises(BuildError, match=r"readelf cannot read broken"):
        elfdeps._readelf(tmp_path, ["ls", "broken"])
