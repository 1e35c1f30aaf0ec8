"""buildlib.rootfs.parts: layers merge with OCI whiteout semantics; parents are created; parts are planned."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.errors import BadInput, HostileLayer
from buildlib.rootfs import layers
from buildlib.rootfs.layers import Entry
from buildlib.rootfs.parts import (
    FILES_PART,
    INIT_PART,
    KERNEL_PART,
    Tree,
    file_entry,
    files_tree,
    merged_root,
    part_fragment,
    plan_parts,
)
from buildlib.spec.model import parse_spec_text


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


CONTAINERS = """\
init: [i:1]
onboot:
  - {name: a, image: "x:1"}
  - {name: b, image: "docker.io/library/x:1", readonly: true}
services:
  - {name: c, image: "y:1", command: [/c]}
volumes:
  - {name: v}
  - {name: w, image: "y:1"}
"""


def test_a_part_per_volume_per_shared_image_and_per_bundle() -> None:
    parts = plan_parts(parse_spec_text(CONTAINERS))
    assert [(p.name, p.images) for p in parts] == [
        (INIT_PART, ("i:1",)),
        ("volume-v", ()),
        ("volume-w", ("y:1",)),
        ("image-onboot-000-a", ("x:1",)),  # b names the same image: it is stored once, in a's bundle
        ("onboot-000-a", ("x:1",)),
        ("onboot-001-b", ("docker.io/library/x:1",)),
        ("image-services-c", ("y:1",)),
        ("services-c", ("y:1",)),
        (FILES_PART, ("i:1", "x:1", "docker.io/library/x:1", "y:1")),
    ]


def test_changing_one_container_changes_only_its_bundle_key() -> None:
    before = parse_spec_text(CONTAINERS)
    after = parse_spec_text(CONTAINERS.replace("command: [/c]", "command: [/c, -v]"))
    changed = [
        part.name
        for part, again in zip(plan_parts(before), plan_parts(after), strict=True)
        if part_fragment(before, part) != part_fragment(after, again)
    ]
    assert changed == ["services-c"]


def test_later_part_wins_on_a_path() -> None:
    early, late = Tree("early"), Tree("late")
    early.add(f("etc/motd", b"early"))
    early.add(f("etc/keep", b"keep"))
    late.add(f("etc/motd", b"late"))
    root = merged_root(
        plan_parts(parse_spec_text("init: [i:1]")), lambda part: early if part.name == INIT_PART else late
    )
    motd = root.get("etc/motd")
    assert paths(root) == ["etc", "etc/keep", "etc/motd"] and motd is not None and motd.read_bytes() == b"late"


def files_of(text: str, below: Tree | None = None) -> Tree:
    spec = parse_spec_text(text)
    return files_tree(spec, {}, below or Tree())


def meta(tree: Tree, path: str) -> tuple[str, int, int, int]:
    entry = tree.get(path)
    assert entry is not None, path
    return entry.kind, entry.mode, entry.uid, entry.gid


def test_files_defaults_and_the_modes_of_the_parents_they_create() -> None:
    below = Tree()
    below.add(Entry("etc", layers.DIR, mode=0o755))
    tree = files_of(
        """\
services: [{name: a, image: "x:1"}, {name: b, image: "x:1"}]
files:
  - {path: etc/secret/key, contents: k}
  - {path: opt/app/run.sh, contents: "#!/bin/sh", mode: "0754", uid: b, gid: 5}
  - {path: srv/data, directory: true}
  - {path: srv/data/link, symlink: /etc/secret/key}
""",
        below,
    )
    assert meta(tree, "etc") == (layers.DIR, 0o755, 0, 0)  # the init's /etc is left as it is
    assert meta(tree, "etc/secret") == (layers.DIR, 0o700, 0, 0)  # 0600 file: rw -> rwx
    assert meta(tree, "etc/secret/key") == (layers.FILE, 0o600, 0, 0)
    assert meta(tree, "opt") == (layers.DIR, 0o755, 101, 5)  # 0754 -> 0755, owner of the file
    assert meta(tree, "opt/app/run.sh") == (layers.FILE, 0o754, 101, 5)
    assert meta(tree, "srv") == (layers.DIR, 0o700, 0, 0)
    assert meta(tree, "srv/data") == (layers.DIR, 0o700, 0, 0)  # directories default to 0700
    link = tree.get("srv/data/link")
    assert link is not None and link.kind == layers.SYMLINK and link.link == "/etc/secret/key"


def test_files_optional_source_and_missing_source(tmp_path: Path) -> None:
    present = tmp_path / "present"
    present.write_bytes(b"data")
    text = f"files:\n  - {{path: a, source: {present}}}\n  - {{path: b, source: {tmp_path}/absent, optional: true}}\n"
    tree = files_of(text)
    entry = tree.get("a")
    assert entry is not None and entry.read_bytes() == b"data" and tree.get("b") is None
    with pytest.raises(BadInput, match="is not a readable file"):
        files_of(f"files:\n  - {{path: b, source: {tmp_path}/absent}}\n")
    with pytest.raises(BadInput, match="no container is named 'ghost'"):
        files_of("files:\n  - {path: c, contents: x, uid: ghost}\n")
