"""buildlib.store.stamp: a build with nothing to do ends at once, and any change still builds."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import Built

from buildlib import cli
from buildlib.store import stamp as build_stamp

NOTHING = "nothing changed, every task up to date"


def _build(cache: Path, spec: Path, out: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert cli.main(["--cache", str(cache), "build", str(spec), "--dir", str(out), "--name", "stamped", *extra]) == 0
    return capsys.readouterr().err


def test_second_build_ends_at_once_and_changes_still_build(
    minimal_build: Built, spec_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache, out = minimal_build.cache, tmp_path / "out"
    assert NOTHING not in _build(cache, spec_copy, out, capsys)
    initrd = out / "stamped-initrd.img"
    written = initrd.stat().st_mtime_ns
    assert NOTHING in _build(cache, spec_copy, out, capsys)
    assert initrd.stat().st_mtime_ns == written

    spec_copy.write_text(spec_copy.read_text().replace('echo "== uname -a"', 'echo "== kernel"'))
    assert "2 tasks ran" in _build(cache, spec_copy, out, capsys)  # the files part and the output
    assert NOTHING in _build(cache, spec_copy, out, capsys)

    initrd.unlink()
    assert "1 tasks ran" in _build(cache, spec_copy, out, capsys)
    assert initrd.is_file()

    assert NOTHING not in _build(cache, spec_copy, out, capsys, "--compression", "gzip")
    assert NOTHING in _build(cache, spec_copy, out, capsys, "--compression", "gzip")


def test_a_touched_component_file_or_another_home_is_not_current(
    minimal_build: Built, spec_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    cache, out = minimal_build.cache, tmp_path / "out"
    _build(cache, spec_copy, out, capsys)
    context = build_stamp.context({"any": "options"})
    stamp = build_stamp.stamp_path(cache, "stamped")
    files = [entry[0] for entry in json.loads(stamp.read_text())["files"]]
    recipe = next(path for path in files if path.endswith("components/init/component.yml"))
    assert any(path.endswith("-initrd.img") for path in files)
    # touched in a copy: the repository's own recipe is watched by other tests' plan caches (its ctime)
    watched = tmp_path / "component.yml"
    shutil.copy2(recipe, watched)
    build_stamp.write(cache, "probe", context, [str(watched)])
    assert build_stamp.is_current(cache, "probe", context)
    stat = os.stat(watched)
    os.utime(watched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert not build_stamp.is_current(cache, "probe", context)
    os.utime(watched, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert build_stamp.is_current(cache, "probe", context)
    monkeypatch.setenv("HOME", str(tmp_path))  # `~/` sources would be other files
    assert not build_stamp.is_current(cache, "probe", build_stamp.context({"any": "options"}))


def test_a_damaged_stamp_means_a_full_build(tmp_path: Path) -> None:
    path = build_stamp.stamp_path(tmp_path, "x")
    path.parent.mkdir(parents=True)
    for text in ("{", "[]", '{"context": {}, "files": [[1]]}'):
        path.write_text(text)
        assert not build_stamp.is_current(tmp_path, "x", build_stamp.context({}))
