"""buildlib.debian.catalog and built-in components: every recipe that ships is listed with what it is
and the LinuxKit package it stands in for, and `distrokit/NAME` names it from any folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMPONENTS

from buildlib import cli
from buildlib.debian import catalog, recipes
from buildlib.spec.model import parse_spec_text


def test_the_built_in_components_are_this_repositorys_in_a_checkout() -> None:
    assert recipes.builtin_components().resolve() == COMPONENTS.resolve()


def test_every_recipe_is_listed_with_what_it_is() -> None:
    listed = catalog.catalog()
    assert [c.name for c in listed] == sorted(p.parent.name for p in COMPONENTS.glob("*/component.yml"))
    for component in listed:
        assert len(component.summary) > 20, component  # the recipe's opening comment says what it is
        assert not component.summary.startswith("LinuxKit's " + component.name + ":")
    by_name = {c.name: c for c in listed}
    assert by_name["getty"].linuxkit == "linuxkit/getty"
    assert by_name["kernel-full"].linuxkit == "linuxkit/kernel"
    assert by_name["busybox"].linuxkit.startswith("busybox")


def test_the_readme_table_names_only_components_that_exist() -> None:
    table = catalog._linuxkit_packages(COMPONENTS / "README.md")
    assert table and set(table) <= {p.parent.name for p in COMPONENTS.glob("*/component.yml")}


def test_a_plain_distrokit_name_resolves_to_the_built_in_recipe_from_any_folder(tmp_path: Path) -> None:
    resolver = recipes.PkgResolver(components=tmp_path / "components")  # the project has none of its own
    spec = parse_spec_text("init: [distrokit/init, 'distrokit/runc:latest']\n", str(tmp_path / "s.yml"), resolver)
    init, runc = spec.init
    assert init == str(recipes.load_recipe(COMPONENTS / "init").ref)
    assert runc == str(recipes.load_recipe(COMPONENTS / "runc").ref)
    assert resolver.origin(init) == "built-in component init"


def test_the_projects_own_component_wins_over_the_built_in_one(tmp_path: Path) -> None:
    own = tmp_path / "components" / "init"
    own.mkdir(parents=True)
    (own / "component.yml").write_text("name: init\npackages: [busybox-static]\n")
    resolver = recipes.PkgResolver(components=tmp_path / "components")
    spec = parse_spec_text("init: [distrokit/init]\n", str(tmp_path / "s.yml"), resolver)
    assert spec.init[0] == str(recipes.load_recipe(own).ref) != str(recipes.load_recipe(COMPONENTS / "init").ref)
    assert resolver.origin(spec.init[0]) == f"component {own}"


@pytest.mark.parametrize("text", ["distrokit/nosuch", "distrokit/init:1.0", "example.com/distrokit/init", "busybox"])
def test_other_names_are_registry_images(tmp_path: Path, text: str) -> None:
    resolver = recipes.PkgResolver(components=tmp_path)
    spec = parse_spec_text(f"init: [{text}]\n", str(tmp_path / "s.yml"), resolver)
    assert spec.init[0] == text and resolver.origin(spec.init[0]).startswith("pulled from ")


def test_validate_says_where_each_image_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yml").write_text("init: [distrokit/init]\nonboot:\n  - {name: x, image: alpine:3}\n")
    assert cli.main(["validate", "-f", "tar", "s.yml"]) == 0
    err = capsys.readouterr().err
    assert "built-in component init" in err and "  alpine:3: pulled from docker.io" in err
    assert cli.main(["validate", "--json", "-f", "tar", "s.yml"]) == 0
    images = json.loads(capsys.readouterr().out)["images"]
    assert list(images.values()) == ["built-in component init", "pulled from docker.io"]


def test_components_lists_the_built_in_ones_and_the_projects_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    own = tmp_path / "components" / "web"
    own.mkdir(parents=True)
    (own / "component.yml").write_text("# A web server.\nname: web\npackages: [busybox-static]\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["components", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["components"]}
    assert rows["getty"]["folder"] == "built in" and rows["getty"]["image"] == "distrokit/getty"
    assert rows["web"]["what"] == "A web server" and rows["web"]["folder"] == str(own)
    assert cli.main(["components"]) == 0
    assert "linuxkit/sshd" in capsys.readouterr().out
