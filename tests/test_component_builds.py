"""buildlib.component_builds: a component image `pkg build` made is up to date for `build`, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built, build, new_cache

from buildlib import cli, component_builds, components
from buildlib.images import Store


def test_pkg_build_then_build_runs_no_component_task(
    tmp_path: Path, debs_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    folders = [str(COMPONENTS / "kernel"), str(COMPONENTS / "init")]
    assert cli.main(["--cache", str(cache), "pkg", "build", *folders]) == 0
    assert "(up to date)" not in capsys.readouterr().err
    built = build(SPECS / "minimal.yml", cache, tmp_path / "out")
    assert not [name for name in built.report.executed if name.startswith("component:")]
    assert {"component:kernel", "component:init"} <= set(built.report.up_to_date)
    assert "output:minimal/kernel+initrd" in built.report.executed


def test_build_then_pkg_build_is_up_to_date(minimal_build: Built, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(minimal_build.cache)
    recipe = components.load_recipe(COMPONENTS / "init")
    before = store.lookup(recipe.ref)
    assert cli.main(["--cache", str(minimal_build.cache), "pkg", "build", str(recipe.folder)]) == 0
    assert capsys.readouterr().err.strip() == f"{recipe.ref.familiar()} {before} (up to date)"


def test_other_packages_or_a_lost_image_are_not_up_to_date(minimal_build: Built) -> None:
    store = Store(minimal_build.cache)
    recipe = components.load_recipe(COMPONENTS / "init")
    packages = components.pinned_packages(store.root, recipe)
    assert component_builds.up_to_date(store, recipe, packages)
    newer = [components.Package(p.name, p.version + "+1", "newer_" + p.filename, "0" * 64) for p in packages]
    assert not component_builds.up_to_date(store, recipe, newer)
    record = component_builds.record_path(store, recipe)
    saved = record.read_text()
    try:
        record.write_text(json.dumps({"inputs": component_builds.inputs_key(recipe, packages), "manifest": "sha256:0"}))
        assert not component_builds.up_to_date(store, recipe, packages)
        record.write_text("{not json")
        assert not component_builds.up_to_date(store, recipe, packages)
    finally:
        record.write_text(saved)
