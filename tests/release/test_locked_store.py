"""A lock checked against the store: a component image in a warm store that was built from other .debs
than the lock pins is never used; it is rebuilt from the pinned .debs when the archive serves them, and
otherwise the build fails in one line naming the package and both values in full. `explain` says so too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMPONENTS

from buildlib import cli
from buildlib.debian import builds
from buildlib.debian.recipes import PACKAGES_LABEL, PkgResolver, load_recipe
from buildlib.store.images import Store


def init_only(spec_copy: Path) -> Path:
    spec = spec_copy.with_name("initonly.yml")
    spec.write_text('init:\n  - "@pkg:../components/init"\n')
    return spec


def run(cache: Path, *argv: str) -> int:
    return cli.main(["--cache", str(cache), *argv])


def build(cache: Path, spec: Path, out: Path) -> int:
    return run(cache, "build", "-q", "--locked", "-f", "tar", str(spec), "--dir", str(out))


def locked_warm_store(spec: Path, cache: Path, out: Path) -> dict[str, str]:
    """Lock the spec, build it --locked (the store is warm now), and return busybox's pin."""
    assert run(cache, "lock", str(spec)) == 0
    assert build(cache, spec, out) == 0
    (package,) = json.loads(spec.with_suffix(".lock").read_text())["components"]["init"]["packages"]
    return dict(package)


def edit_pin(spec: Path, field: str, value: str) -> None:
    path = spec.with_suffix(".lock")
    document = json.loads(path.read_text())
    document["components"]["init"]["packages"][0][field] = value
    path.write_text(json.dumps(document, indent=2))


@pytest.mark.parametrize(
    ("field", "value"),
    [("sha256", "0" * 64), ("version", "1:9.99-edited1"), ("architecture", "arm64")],
)  # edited by hand: the file name stays, so the stored .deb and the stored image still look like a match
def test_a_hand_edited_pin_is_refused_with_a_warm_store(
    field: str, value: str, spec_copy: Path, shared_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = init_only(spec_copy)
    real = locked_warm_store(spec, shared_cache, tmp_path / "out")
    edit_pin(spec, field, value)
    capsys.readouterr()
    assert build(shared_cache, spec, tmp_path / "out") != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "busybox-static" in err and value in err and real[field] in err, err  # both values, in full
    # explain sees the same disagreement instead of "everything is up to date"
    assert run(shared_cache, "explain", "--locked", "-f", "tar", str(spec), "--dir", str(tmp_path / "out")) == 0
    said = capsys.readouterr().out
    assert "everything is up to date" not in said
    assert "component:init" in said and value in said and real[field] in said, said


def test_a_stored_image_built_from_other_debs_is_rebuilt_from_the_pinned_ones(
    spec_copy: Path, shared_cache: Path, tmp_path: Path
) -> None:
    spec = init_only(spec_copy)
    pinned = locked_warm_store(spec, shared_cache, tmp_path / "out")
    # The store's init image now claims other .debs (as one imported from a teammate whose archive served
    # another busybox would), its build record kept up to date: only its own label tells.
    store = Store(shared_cache)
    recipe = load_recipe(COMPONENTS / "init")
    assert PkgResolver().folders == {}  # (the recipe's reference needs no resolver)
    image = store.image_by_digest(str(recipe.ref), store.lookup(recipe.ref) or "")
    config = dict(image.config)
    labels = {**image.labels, PACKAGES_LABEL: json.dumps([["busybox-static", "1:0.1-other1", "e" * 64, "amd64"]])}
    config["config"] = {**image.runtime_config, "Labels": labels}
    layers = [(layer.digest, layer.size, layer.media_type) for layer in image.layers]
    other = store.write_image(recipe.ref, config, layers)
    record = builds.record_path(store, recipe)
    record.write_text(json.dumps({**json.loads(record.read_text()), "manifest": other}))
    assert build(shared_cache, spec, tmp_path / "out") == 0
    rebuilt = store.image_by_digest(str(recipe.ref), store.lookup(recipe.ref) or "")
    assert rebuilt.manifest_digest == image.manifest_digest  # the pinned .debs give the same bytes again
    (recorded,) = json.loads(rebuilt.labels[PACKAGES_LABEL])
    assert recorded[:3] == [pinned["name"], pinned["version"], pinned["sha256"]]
