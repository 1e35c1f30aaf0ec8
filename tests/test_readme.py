"""The README and docs/ say only what holds: their links lead somewhere, the walk-through's commands are
real commands with real options, and the spec they show is valid."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO

from buildlib.cli import main, parser
from buildlib.cli.habits import subcommands

README = REPO / "README.md"
DOCS = sorted([README, *(REPO / "docs").glob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_SEPARATORS = ("|", "&&", "||", ";", ">", "<")


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in prose(path.read_text()).splitlines() if line.startswith("#")}


def links(path: Path) -> list[str]:
    return [target for target in LINK.findall(prose(path.read_text())) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", DOCS, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in links(page):
        file, _, fragment = target.partition("#")
        found = (page.parent / file).resolve() if file else page
        if not found.exists():
            broken.append(f"{target}: no such file")
        elif fragment and found.suffix == ".md" and fragment not in anchors(found):
            broken.append(f"{target}: no such heading in {found.name}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def distrokit_commands(text: str) -> list[list[str]]:
    """The argument lists of every `distrokit` command line in the text's sh blocks (pipes, && and
    redirections split a line into commands; comments dropped)."""
    found = []
    for block in blocks(text, "sh"):
        for line in block.splitlines():
            command: list[str] = []
            for word in [*shlex.split(line, comments=True), ";"]:
                if word not in SHELL_SEPARATORS:
                    command.append(word)
                    continue
                if command and Path(command[0]).name == "distrokit":
                    found.append(command[1:])
                command = []
    return found


def walk_through() -> str:
    text = README.read_text()
    return text[text.index("## A first walk-through") :].split("\n## ", 1)[0]


def test_the_walk_through_goes_build_run_look_inside_change_rebuild() -> None:
    words = [argv[0] for argv in distrokit_commands(walk_through())]
    assert words == ["build", "run", "build", "sbom", "build", "explain", "build", "build"]
    assert "tar tf" in walk_through() and "sed -i" in walk_through()


@pytest.mark.parametrize("argv", distrokit_commands(README.read_text()), ids=" ".join)
def test_every_distrokit_command_in_the_readme_parses(argv: list[str]) -> None:
    known = {" ".join(path) for path, _ in subcommands(parser())}
    assert argv[0] in known, f"distrokit {argv[0]}: no such command"
    parser(argv).parse_args(argv)  # an unknown command, subcommand or option exits 2 here


def test_the_readme_spec_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (spec_text,) = blocks(README.read_text(), "yaml")
    (tmp_path / "specs").mkdir()
    (tmp_path / "components").symlink_to(COMPONENTS, target_is_directory=True)  # its @pkg:../components
    spec = tmp_path / "specs" / "hello.yml"
    spec.write_text(spec_text)
    assert main(["validate", str(spec)]) == 0, capsys.readouterr().err
