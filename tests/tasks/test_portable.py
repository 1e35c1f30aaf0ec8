"""buildlib.tasks.portable: a store copied or restored to another folder is as warm as the original."""

from __future__ import annotations

from pathlib import Path

from conftest import SPECS, Built, build, snapshot_store

from buildlib.tasks.portable import TOKEN, store_codec


def test_a_copied_store_runs_no_task(minimal_build: Built, tmp_path: Path) -> None:
    build(SPECS / "minimal.yml", minimal_build.cache, minimal_build.out_dir)  # the state as this spec left it
    moved = tmp_path / "elsewhere" / "cache"
    snapshot_store(minimal_build.cache, moved)

    again = build(SPECS / "minimal.yml", moved, minimal_build.out_dir)
    assert again.report.executed == ()
    assert len(again.report.up_to_date) >= 5


def test_codec_keeps_paths_outside_the_store(tmp_path: Path) -> None:
    codec = store_codec(tmp_path / "cache")()
    inside, outside = str(tmp_path / "cache" / "images" / "a.json"), str(tmp_path / "cache2" / "x")
    text = codec.encode({inside: [1, 2, "h"], "deps:": [inside, outside]})
    assert str(tmp_path / "cache") + "/" not in text and TOKEN in text and outside in text
    assert store_codec(tmp_path / "moved")().decode(text)["deps:"] == [
        str(tmp_path / "moved" / "images" / "a.json"),
        outside,
    ]
