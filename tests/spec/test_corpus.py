"""Every YAML file of LinuxKit's repository, checked against what LinuxKit itself does with it.

The corpus lives outside the repository (../shared/linuxkit-corpus, or $DISTROKIT_CORPUS); its
MANIFEST.tsv says, per file, whether LinuxKit accepts it and if not why.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from buildlib import cli
from buildlib.errors import SpecError
from buildlib.spec.model import InvalidSpec, load_spec, parse_spec_text

CORPUS = Path(os.environ.get("DISTROKIT_CORPUS", Path(__file__).parents[3] / "shared" / "linuxkit-corpus"))


def _rows() -> list[tuple[str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        return [(row["path"], row["expected"]) for row in csv.DictReader(handle, delimiter="\t")]


ROWS = _rows()
pytestmark = pytest.mark.skipif(not ROWS, reason=f"LinuxKit corpus not found at {CORPUS}")


def _error(path: str) -> InvalidSpec:
    with pytest.raises(SpecError) as caught:
        load_spec([CORPUS / path])
    assert isinstance(caught.value, InvalidSpec)
    return caught.value


@pytest.mark.parametrize(("path", "expected"), ROWS, ids=[path for path, _ in ROWS])
def test_corpus_file(path: str, expected: str) -> None:
    if expected in ("valid", "invalid-build"):
        # invalid-build (a read-write bind onto a read-only volume) fails only when built, not here.
        spec = load_spec([CORPUS / path])
        assert spec.files_read == (str(CORPUS / path),)
        assert not spec.warnings
    elif expected == "invalid-yaml":
        error = _error(path)
        assert all(issue.line > 0 for issue in error.issues)
        assert str(error).startswith(f"{CORPUS / path}:")
    elif expected == "invalid-schema":
        error = _error(path)
        assert [(i.field, i.line, i.column) for i in error.issues] == [("unknownField", 1, 1)]
        assert "unknown key" in str(error)
    elif expected == "needs-local-packages":
        error = _error(path)
        assert "pkg/init" in str(error)
        assert all("@pkg:" in issue.message for issue in error.issues)
    elif expected == "not-a-build-config":
        error = _error(path)
        assert len(error.issues) == 1
        assert "not a distrokit/LinuxKit build spec" in str(error)
    else:
        pytest.fail(f"MANIFEST.tsv has an expectation this test does not know: {expected}")


@pytest.mark.parametrize("path", [p for p, e in ROWS if e == "valid"])
def test_corpus_round_trip(path: str) -> None:
    """What --dry-run prints reads back as the same spec."""
    spec = load_spec([CORPUS / path])
    again = parse_spec_text(spec.to_yaml(), "dry-run.yml")
    assert again.to_dict() == spec.to_dict()
    assert again.containers() == spec.containers()


def test_static_ip_points_at_the_stray_comment() -> None:
    """LinuxKit (libyaml) reports line 24; PyYAML finds the problem at 28:7, inside the block mapping
    of line 25. The real cause is the column-0 comment on line 27, which the message names."""
    if ("examples/static-ip.yml", "invalid-yaml") not in ROWS:
        pytest.skip("examples/static-ip.yml is not in this corpus")
    error = _error("examples/static-ip.yml")
    assert str(error).startswith(f"{CORPUS / 'examples/static-ip.yml'}:28:7: ")
    assert "line 27 starts with '#'" in str(error)


def test_needs_local_packages_resolves_where_the_folder_exists(tmp_path: Path) -> None:
    """The README's other half: with the package folders present, the templates resolve."""
    template = CORPUS / "linuxkit-template.yml"
    if not template.is_file():
        pytest.skip("linuxkit-template.yml is not in this corpus")
    copy = tmp_path / "linuxkit-template.yml"
    copy.write_text(template.read_text())
    for name in ("init", "runc", "containerd", "ca-certificates", "sysctl", "dhcpcd", "getty", "rngd"):
        (tmp_path / "pkg" / name).mkdir(parents=True)
    spec = load_spec([copy], resolve_pkg=lambda folder: f"example.org/pkg/{folder.name}:dev")
    assert spec.init[0] == "example.org/pkg/init:dev"
    assert spec.services[0].image == "example.org/pkg/getty:dev"


@pytest.mark.parametrize("path", [p for p, e in ROWS if e == "invalid-build"])
def test_invalid_build_fails_at_build_before_pulling(
    path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`distrokit build` rejects it with exit code 2 and a message naming the container and the volume,
    before any image is pulled, and `validate` rejects it with the same message (LinuxKit's validate
    accepts it and its build fails later: we say it once, up front)."""
    cache = tmp_path / "cache"
    code = cli.main(["--cache", str(cache), "build", str(CORPUS / path), "--dir", str(tmp_path / "out"), "-q"])
    assert code == 2
    message = capsys.readouterr().err
    assert "onboot[0] (test): binds[1] mounts volume 'vola' read-write, but the volume is read-only" in message
    assert not (cache / "blobs").exists()
    assert cli.main(["validate", str(CORPUS / path)]) == 2
    assert "binds[1] mounts volume 'vola' read-write, but the volume is read-only" in capsys.readouterr().err
