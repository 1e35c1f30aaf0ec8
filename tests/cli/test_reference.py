"""buildlib.cli.reference: docs/cli.md is what the parsers say, at a fixed width whatever the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from buildlib.cli import reference
from buildlib.cli.habits import subcommands

CLI_MD = REPO / "docs" / "cli.md"


def test_docs_cli_md_is_what_the_parsers_say() -> None:
    assert CLI_MD.read_text() == reference.markdown(), (
        f"docs/cli.md is out of date: regenerate it with `.venv/bin/{reference.REGENERATE}` and commit it"
    )


def test_every_command_and_subcommand_has_a_section() -> None:
    text = reference.markdown()
    for path, _ in subcommands(reference.parser()):
        assert f"## `distrokit {' '.join(path)}`" in text, path


def test_the_width_does_not_follow_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    assert reference.markdown() == CLI_MD.read_text()
    assert os.environ["COLUMNS"] == "40", "the terminal's width is put back"
    monkeypatch.delenv("COLUMNS")
    reference.markdown()
    assert "COLUMNS" not in os.environ


def test_the_module_prints_the_reference() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "buildlib.cli.reference"], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert done.stdout == CLI_MD.read_text()
