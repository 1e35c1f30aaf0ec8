"""buildlib.cli.jsonout: the documented --json shapes of build, validate, explain, cache ls/du and errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import SPECS, Built

from buildlib.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = main(list(args))
    return code, json.loads(capsys.readouterr().out)


def test_build_json_names_outputs_with_digests_and_tasks(minimal_build: Built, capsys) -> None:  # type: ignore[no-untyped-def]
    cache, out = str(minimal_build.cache), str(minimal_build.out_dir)
    code, doc = run_json(capsys, "--cache", cache, "build", str(SPECS / "minimal.yml"), "--dir", out, "-q", "--json")
    assert code == 0
    assert doc["version"] == 1 and doc["command"] == "build" and doc["name"] == "minimal"
    paths = {Path(item["path"]).name: item for item in doc["outputs"]}
    assert set(paths) == {"minimal-kernel", "minimal-initrd.img", "minimal-cmdline"}
    initrd = paths["minimal-initrd.img"]
    data = (minimal_build.out_dir / "minimal-initrd.img").read_bytes()
    assert initrd["size"] == len(data) and initrd["sha256"] == hashlib.sha256(data).hexdigest()
    assert doc["tasks"]["ran"] == [] and doc["tasks"]["fetched"] == []
    assert "output:minimal/kernel+initrd" in doc["tasks"]["up_to_date"]  # one task a format
    assert doc["counts"] == {"ran": 0, "fetched": 0, "up_to_date": len(doc["tasks"]["up_to_date"])}
    assert doc["timings"]["total_seconds"] >= 0 and doc["warnings"] == []


def test_explain_validate_and_cache_json(minimal_build: Built, capsys) -> None:  # type: ignore[no-untyped-def]
    cache, out = str(minimal_build.cache), str(minimal_build.out_dir)
    code, doc = run_json(capsys, "--cache", cache, "explain", str(SPECS / "minimal.yml"), "--dir", out, "--json")
    assert code == 0 and {item["status"] for item in doc["tasks"]} == {"up-to-date"}
    code, doc = run_json(capsys, "validate", str(SPECS / "minimal.yml"), "--json")
    assert (code, doc["valid"], doc["specs"]) == (0, True, [str(SPECS / "minimal.yml")])
    code, doc = run_json(capsys, "--cache", cache, "cache", "ls", "--json")
    kernel = next(image for image in doc["images"] if image["name"].startswith("distrokit/kernel:"))
    assert kernel["complete"] and kernel["digest"].startswith("sha256:") and "minimal" in kernel["used_by"]
    code, doc = run_json(capsys, "--cache", cache, "cache", "du", "--json")
    assert doc["command"] == "cache du" and doc["total"]["size"] == sum(area["size"] for area in doc["areas"])


def test_an_error_is_a_json_document_too(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yml"
    bad.write_text("kernel: [\n")
    code, doc = run_json(capsys, "validate", str(bad), "--json")
    assert code == 2 and doc["error"]["exit_code"] == 2 and "bad.yml" in doc["error"]["message"]


def test_pull_json_names_the_images_and_digests(minimal_build: Built, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from conftest import COMPONENTS

    from buildlib.debian.recipes import load_recipe
    from buildlib.store.images import Store

    init = load_recipe(COMPONENTS / "init").ref
    archive = tmp_path / "init.tar"
    assert main(["--cache", str(minimal_build.cache), "cache", "export", str(init), str(archive)]) == 0
    capsys.readouterr()
    fresh = str(tmp_path / "fresh")
    code, doc = run_json(
        capsys, "pull", f"oci-archive:{archive}", "--name", "local/init:a", "-q", "--json", "--cache", fresh
    )
    assert code == 0 and doc["command"] == "pull"
    assert doc["images"] == [{"ref": "docker.io/local/init:a", "digest": Store(minimal_build.cache).lookup(init)}]
