"""buildlib.cli: bad input gives one clear line, the right exit code, and nothing in --dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COMPONENTS

from buildlib import cli
from buildlib.images import Store
from buildlib.refs import ImageRef


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_not_yaml_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "broken.yml"
    spec.write_text("kernel:\n  image: x\n  cmdline: [unclosed\n")
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(out))
    assert code == 2
    assert f"{spec}:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_key_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "typo.yml"
    spec.write_text("kernel:\n  image: x\n  cmdlin: foo\n")
    code, err = run_cli(capsys, "validate", str(spec))
    assert code == 2 and "typo.yml:3:3" in err and "cmdlin" in err


def test_unknown_component_names_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "nocomp.yml"
    spec.write_text('init:\n  - "@pkg:./no-such-component"\n')
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(out))
    assert code == 2 and "no-such-component" in err
    assert not out.exists()
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "pkg", "build", str(tmp_path / "nothing"))
    assert code == 2 and "nothing" in err


def test_missing_image_names_it_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "missing.yml"
    # Port 9 on loopback: nothing listens, so every attempt fails at once without leaving this machine.
    spec.write_text("init:\n  - 127.0.0.1:9/distrokit/absent:1\n")
    out = tmp_path / "out"
    argv = ["--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(out), "--retries", "2"]
    code, err = run_cli(capsys, *argv)
    assert code == 1 and "after 2 attempts" in err
    assert "127.0.0.1:9/distrokit/absent:1" in err and "Traceback" not in err
    assert not out.exists()
    # nothing poisoned: the store has no name for the image that failed
    assert Store(tmp_path / "c").lookup(ImageRef.parse("127.0.0.1:9/distrokit/absent:1")) is None
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and "refs" in p.parts]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "typo.yml"
    spec.write_text("init: []\nkernl: {}\n")
    with pytest.raises(Exception, match="kernl"):
        cli.main(["--debug", "validate", str(spec)])


def test_dry_run_prints_the_normalised_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["build", "--dry-run", str(COMPONENTS.parent / "specs" / "minimal.yml")])
    out = capsys.readouterr().out
    assert code == 0 and "docker.io/distrokit/kernel:" in out and "90-report" in out


def test_explain_keys_tasks_as_the_build_did(minimal_build, tmp_path: Path, capsys) -> None:
    spec = str(COMPONENTS.parent / "specs" / "minimal.yml")
    common = ["--cache", str(minimal_build.cache)]
    where = ["--dir", str(tmp_path), "--name", "gz", "--compression", "gzip"]
    assert cli.main([*common, "build", spec, *where, "-q"]) == 0
    capsys.readouterr()
    assert cli.main([*common, "explain", spec, *where]) == 0
    assert "everything is up to date" in capsys.readouterr().out
    assert cli.main([*common, "explain", spec, "--dir", str(tmp_path), "--name", "gz"]) == 0
    # the table may wrap the reason within its column: compare without the white space
    assert "input'compression'changed:gzip->zstd" in "".join(capsys.readouterr().out.split())


def test_pull_from_local_oci_archive_and_layout(minimal_build, tmp_path: Path, capsys) -> None:
    import subprocess

    from buildlib.components import load_recipe

    init = load_recipe(COMPONENTS / "init").ref
    archive = tmp_path / "init.tar"
    assert cli.main(["--cache", str(minimal_build.cache), "cache", "export", str(init), str(archive)]) == 0
    layout = tmp_path / "layout"
    # as distrokit does: keep uncompressed layers as they are, so the digest stays
    copy = ["skopeo", "copy", "-q", "--dest-oci-accept-uncompressed-layers"]
    subprocess.run([*copy, f"oci-archive:{archive}", f"oci:{layout}:v1"], check=True)
    fresh = ["--cache", str(tmp_path / "fresh")]
    assert cli.main([*fresh, "pull", f"oci-archive:{archive}", "--name", "local/init:a", "-q"]) == 0
    assert cli.main([*fresh, "pull", f"oci:{layout}:v1", "--name", "local/init:b", "-q"]) == 0
    store, original = Store(tmp_path / "fresh"), Store(minimal_build.cache)
    digest = original.lookup(init)
    assert store.lookup(ImageRef.parse("local/init:a")) == digest
    assert store.lookup(ImageRef.parse("local/init:b")) == digest
    capsys.readouterr()
    assert cli.main([*fresh, "pull", f"oci:{layout}:v1", "-q"]) == 2
    assert "--name" in capsys.readouterr().err
