"""buildlib.spec.indent: a mis-indented key or item is named as the spec names it, with the column it needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib import cli
from buildlib.spec.model import InvalidSpec, parse_spec_text

CASES = [
    # a list item deeper than its sibling: PyYAML says "expected <block end>, but found '<block sequence start>'"
    (
        "services:\n  - name: a\n    image: x\n   - name: b\n     image: y\n",
        "x.yml:4:4: `services[1]` is indented under `services[0].image` (line 3)",
        "indent it 2 spaces",
    ),
    # a key less indented than its siblings
    ("kernel:\n  image: x\n cmdline: y\n", "x.yml:3:2: `kernel.cmdline` is indented 1 space", "or 0 to put it"),
    # a key nested under a key that already has a value: "mapping values are not allowed here"
    (
        "services:\n  - name: a\n    image: x\n      command: [a]\n",
        "x.yml:4:7: `services[0].command` is indented under `services[0].image` (line 3)",
        "indent it 4 spaces",
    ),
    ("services:\n  - name: a\n   image: x\n", "x.yml:3:4: `services[0].image` is indented 3 spaces", "at 4"),
]


@pytest.mark.parametrize(("text", "start", "fix"), CASES)
def test_indentation_is_explained_in_spec_terms(text: str, start: str, fix: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        parse_spec_text(text, "x.yml")
    message = str(caught.value)
    assert message.startswith(start) and fix in message
    assert "<block end>" not in message and "mapping values" not in message


def test_other_syntax_errors_keep_their_message() -> None:
    with pytest.raises(InvalidSpec, match=r"x.yml:4:1: expected .* started at line 3"):
        parse_spec_text("kernel:\n  image: x\n  cmdline: [unclosed\n", "x.yml")


def test_validate_reports_the_indentation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "indent.yml"
    spec.write_text(CASES[0][0])
    assert cli.main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:4:4: `services[1]` is indented" in err and len(err.strip().splitlines()) == 1
