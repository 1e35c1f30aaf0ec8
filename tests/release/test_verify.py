"""`distrokit verify`: a fresh rebuild compared with a release, byte for byte, naming the first member
that differs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built, build

from buildlib import cli, tasks
from buildlib.tasks import verify


def test_verify_passes_on_the_minimal_spec(minimal_build: Built, tmp_path: Path) -> None:
    options = tasks.BuildOptions(cache=minimal_build.cache, out_dir=minimal_build.out_dir, name="minimal")
    report = verify.verify([SPECS / "minimal.yml"], options, COMPONENTS, work=tmp_path)
    assert report.ok, report.to_json()
    assert [r.name for r in report.files] == ["minimal-kernel", "minimal-initrd.img", "minimal-cmdline"]
    assert list(tmp_path.iterdir()) == []  # the fresh cache is gone


def test_verify_names_the_member_a_release_differs_in(
    spec_copy: Path, shared_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(shared_cache)
    assert cli.main(["--cache", cache, "lock", str(spec_copy)]) == 0
    edited = spec_copy.with_name("edited.yml")
    edited.write_text(spec_copy.read_text().replace('echo "== uname -a"', 'echo "== kernel"'))
    release = tmp_path / "release"
    build(edited, shared_cache, release, name="release", formats=("kernel+initrd", "tar"))
    capsys.readouterr()
    args = ["--cache", cache, "verify", str(spec_copy), "--name", "release", "-f", "kernel+initrd", "-f", "tar"]
    args += ["--dir", str(release)]
    code = cli.main([*args, "--json", "--work", str(tmp_path)])
    result = json.loads(capsys.readouterr().out)
    assert code == 1 and result["ok"] is False
    by_file = {item["file"]: item for item in result["files"]}
    assert by_file["release-kernel"]["matches"] and by_file["release-cmdline"]["matches"]
    for name in ("release-initrd.img", "release.tar"):
        assert not by_file[name]["matches"]
        assert by_file[name]["member"] == "etc/distrokit/boot.d/90-report", by_file[name]
        assert "data sha256" in by_file[name]["detail"]
    # The human form says the same in one line per file.
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "DIFFERS  release-initrd.img: first differing member etc/distrokit/boot.d/90-report" in err
    assert "do NOT rebuild bit for bit" in err


def test_a_file_that_differs_with_no_member_named_shows_both_hashes_in_full() -> None:
    # two hashes alike in their first 16 digits: cut short, they would print the same
    expected, rebuilt = "sha256:" + "a" * 63 + "1", "sha256:" + "a" * 63 + "2"
    result = verify.FileResult("x-kernel", expected, rebuilt)
    assert result.reason == f"sha256 {expected[7:]} != rebuilt {rebuilt[7:]}"
