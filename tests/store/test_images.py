"""buildlib.store.images: the store's scratch folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildlib import fsutil
from buildlib.store.images import Store


def test_a_scratch_tree_is_made_in_memory_when_there_is_room_and_removed_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(fsutil.SCRATCH_ENV, str(tmp_path / "fast"))
    store = Store(tmp_path / "store")
    with store.scratch_tree("unpack-", 1 << 20) as tree:
        assert tree.parent == fsutil.memory_scratch(store.root) and tree.name.startswith(f"{os.getpid()}.unpack-")
        (tree / "a" / "b").mkdir(parents=True)
        (tree / "a" / "b" / "file").write_bytes(b"x")
        with store.scratch_tree("other-", 1 << 20) as second:  # a second tree beside it, as threads make
            assert second.parent == tree.parent
        assert tree.is_dir()
    assert not tree.exists() and not tree.parent.exists()  # nothing left in memory, not even the folder


def test_a_scratch_tree_without_room_in_memory_is_made_in_the_stores_tmp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "store")
    for setting in (str(tmp_path / "fast"), "store"):
        monkeypatch.setenv(fsutil.SCRATCH_ENV, setting)
        with store.scratch_tree("unpack-", 1 << 62) as tree:  # more than any file system holds
            assert tree.parent == store.tmp
        assert not tree.exists()
