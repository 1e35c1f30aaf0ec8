"""buildlib.tasks.scaffold (`distrokit init`): a starting project that validates with the built-in
components, and never overwrites a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib import cli
from buildlib.debian import recipes
from buildlib.errors import BadInput
from buildlib.spec.model import load_spec
from buildlib.tasks import scaffold


def test_init_writes_a_spec_of_built_in_components_a_dodo_and_a_gitignore(tmp_path: Path) -> None:
    project = scaffold.init_project(tmp_path / "My OS")
    assert project.name == "my-os"
    assert sorted(p.name for p in (tmp_path / "My OS").iterdir()) == [".gitignore", "dodo.py", "my-os.yml"]
    resolver = recipes.PkgResolver(components=tmp_path / "My OS" / "components")
    spec = load_spec([tmp_path / "My OS" / "my-os.yml"], resolver)
    assert {resolver.origin(ref) for ref in spec.images()} == {
        f"built-in component {name}" for name in ("kernel", "init", "runc", "sysctl", "getty")
    }
    assert [f.path for f in spec.files] == ["etc/distrokit/boot.d/50-hello"]
    compile((tmp_path / "My OS" / "dodo.py").read_text(), "dodo.py", "exec")
    assert "/cache/" in (tmp_path / "My OS" / ".gitignore").read_text()


def test_init_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dodo.py").write_text("# mine\n")
    with pytest.raises(BadInput, match="dodo.py already exists"):
        scaffold.init_project(tmp_path)
    assert (tmp_path / "dodo.py").read_text() == "# mine\n" and not (tmp_path / f"{tmp_path.name}.yml").exists()
    assert cli.main(["init", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
