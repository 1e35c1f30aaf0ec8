"""buildlib.rootfs: layers merge with OCI whiteout semantics; parents are created; parts are planned."""

from __future__ import annotations

import pytest

from buildlib import layers
from buildlib.errors import HostileLayer
from buildlib.layers import Entry
from buildlib.rootfs import FILES_PART, INIT_PART, KERNEL_PART, Tree, file_entry, plan_parts
from buildlib.spec import parse_spec_text


def f(path: str, data: bytes = b"") -> Entry:
    return file_entry(path, data)


def d(path: str) -> Entry:
    return Entry(path, layers.DIR, mode=0o755)


def paths(tree: Tree) -> list[str]:
    return [e.path for e in tree.entries()]


def test_whiteout_removes_lower_path_and_children() -> None:
    tree = Tree()
    tree.apply_layer([d("etc"), f("etc/a"), d("etc/sub"), f("etc/sub/b"), f("keep")], "lower")
    tree.apply_layer([Entry("etc/sub", layers.WHITEOUT)], "upper")
    assert paths(tree) == ["etc", "etc/a", "keep"]


def test_opaque_hides_lower_children_but_keeps_its_own_layer() -> None:
    tree = Tree()
    tree.apply_layer([d("var"), d("var/cache"), f("var/cache/old"), f("var/other")], "lower")
    tree.apply_layer([f("var/cache/new"), Entry("var/cache", layers.OPAQUE)], "upper")
    assert paths(tree) == ["var", "var/cache", "var/cache/new", "var/other"]


def test_whiteout_in_same_layer_does_not_remove_that_layers_file() -> None:
    tree = Tree()
    tree.apply_layer([f("a", b"lower")], "lower")
    tree.apply_layer([f("a", b"upper"), Entry("a", layers.WHITEOUT)], "upper")
    entry = tree.get("a")
    assert entry is not None and entry.read_bytes() == b"upper"


def test_file_replacing_directory_drops_its_children() -> None:
    tree = Tree()
    tree.apply_layer([d("opt"), f("opt/x")], "lower")
    tree.apply_layer([f("opt", b"now a file")], "upper")
    assert paths(tree) == ["opt"]


def test_missing_parents_are_created_and_order_is_parents_first() -> None:
    tree = Tree()
    tree.add(f("z/y/x"))
    tree.add(f("a"))
    tree.add(f("z-sibling"))
    assert paths(tree) == ["a", "z", "z/y", "z/y/x", "z-sibling"]
    z = tree.get("z")
    assert z is not None and z.kind == layers.DIR and z.mode == 0o755


def test_hardlink_to_missing_target_is_refused() -> None:
    tree = Tree()
    with pytest.raises(HostileLayer, match="does not exist"):
        tree.apply_layer([Entry("b", layers.HARDLINK, link="nowhere")], "layer")


def test_relocated_moves_hardlink_targets_too() -> None:
    tree = Tree()
    tree.add(f("bin/busybox", b"bb"))
    tree.add(Entry("bin/sh", layers.HARDLINK, link="bin/busybox"))
    moved = tree.relocated("containers/services/x/rootfs", "x")
    link = moved.get("containers/services/x/rootfs/bin/sh")
    assert link is not None and link.link == "containers/services/x/rootfs/bin/busybox"


def test_parts_follow_the_spec() -> None:
    spec = parse_spec_text("kernel:\n  image: k:1\ninit: [i:1, r:1]\n")
    assert [(p.name, p.images) for p in plan_parts(spec)] == [
        (KERNEL_PART, ("k:1",)),
        (INIT_PART, ("i:1", "r:1")),
        (FILES_PART, ("k:1", "i:1", "r:1")),
    ]
    no_tar = parse_spec_text("kernel:\n  image: k:1\n  tar: none\ninit: [i:1]\n")
    assert [p.name for p in plan_parts(no_tar)] == [INIT_PART, FILES_PART]
