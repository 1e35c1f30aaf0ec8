"""buildlib.debian.builds: a component image `pkg build` made is up to date for `build`, and back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built, build, new_cache, snapshot_store

from buildlib import cli
from buildlib.debian import archive, recipes
from buildlib.debian import builds as component_builds
from buildlib.store.images import Store


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
    recipe = recipes.load_recipe(COMPONENTS / "init")
    before = store.lookup(recipe.ref)
    assert cli.main(["--cache", str(minimal_build.cache), "pkg", "build", str(recipe.folder)]) == 0
    assert capsys.readouterr().err.strip() == f"{recipe.ref.familiar()} {before} (up to date)"


def test_other_packages_or_a_lost_image_are_not_up_to_date(minimal_build: Built, tmp_path: Path) -> None:
    # a copy: the record edited below would make other tests' builds in the shared store rebuild init
    store = Store(snapshot_store(minimal_build.cache, tmp_path / "cache"))
    recipe = recipes.load_recipe(COMPONENTS / "init")
    packages = archive.pinned_packages(store.root, recipe)
    assert component_builds.up_to_date(store, recipe, packages)
    newer = [recipes.Package(p.name, p.version + "+1", "newer_" + p.filename, "0" * 64) for p in packages]
    assert not component_builds.up_to_date(store, recipe, newer)
    record = component_builds.record_path(store, recipe)
    saved = record.read_text()
    try:
        record.write_text(
            json.dumps({"inputs": component_builds.inputs_key(store, recipe, packages), "manifest": "sha256:0"})
        )
        assert not component_builds.up_to_date(store, recipe, packages)
        record.write_text("{not json")
        assert not component_builds.up_to_date(store, recipe, packages)
    finally:
        record.write_text(saved)


def test_host_tool_versions_are_remembered_while_the_tool_file_stays_the_same(tmp_path: Path) -> None:
    """The store remembers each tool's answer with its file's identity: no process asks it again
    until the file changes (a package upgrade replaces it)."""
    asked = component_builds.host_tool_versions()
    component_builds._host_tool_versions.cache_clear()
    assert component_builds.host_tool_versions(tmp_path) == asked
    record = tmp_path / component_builds.HOST_TOOLS_RECORD
    saved = json.loads(record.read_text())
    assert set(saved) == {command[0] for command in component_builds.COMPONENT_HOST_TOOLS}

    saved["busybox"]["version"] = "BusyBox remembered"
    record.write_text(json.dumps(saved))
    component_builds._host_tool_versions.cache_clear()
    assert component_builds.host_tool_versions(tmp_path)["busybox"] == "BusyBox remembered"

    saved["busybox"]["file"][-1] += 1  # the file changed since (another ctime): the tool is asked again
    record.write_text(json.dumps(saved))
    component_builds._host_tool_versions.cache_clear()
    assert component_builds.host_tool_versions(tmp_path)["busybox"] == asked["busybox"]
    assert json.loads(record.read_text())["busybox"]["version"] == asked["busybox"]
    component_builds._host_tool_versions.cache_clear()


def test_an_unreadable_host_tool_record_is_asked_again(tmp_path: Path) -> None:
    record = tmp_path / component_builds.HOST_TOOLS_RECORD
    record.parent.mkdir(parents=True)
    record.write_text("{not json")
    component_builds._host_tool_versions.cache_clear()
    try:
        assert component_builds.host_tool_versions(tmp_path)["busybox"].startswith("BusyBox")
        assert json.loads(record.read_text())["busybox"]["version"].startswith("BusyBox")
    finally:
        component_builds._host_tool_versions.cache_clear()
