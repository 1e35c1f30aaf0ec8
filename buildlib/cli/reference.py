"""The command reference, docs/cli.md, made from the parsers themselves so it cannot drift from them.

`python -m buildlib.cli.reference > docs/cli.md` writes it again: every command's and subcommand's
`--help`, wrapped at a fixed width whatever the terminal, so the file is the same on every machine.
tests/cli/test_reference.py fails when the committed file differs from what the parsers say."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator

from . import parser
from .habits import subcommands

WIDTH = 100  # the columns argparse wraps at (the golden --help files are taken at this width too)
REGENERATE = "python -m buildlib.cli.reference > docs/cli.md"
HEADER = f"""# Command reference

Every `distrokit` command's `--help`, generated from the parsers (`{REGENERATE}`);
tests/cli/test_reference.py fails when this file and the parsers disagree, so do not edit it by hand.
The options `--cache` and `--debug` may come before or after the command (see
[the user guide](user-guide.md)); `--json` documents are described in [json.md](json.md).
"""


@contextlib.contextmanager
def fixed_width(columns: int = WIDTH) -> Iterator[None]:
    """argparse wraps at $COLUMNS (read when a parser is made and when its help is formatted)."""
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(columns)
    try:
        yield
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before


def help_texts(columns: int = WIDTH) -> list[tuple[str, str]]:
    """(command line, its --help text) for `distrokit` and every command and subcommand below it."""
    with fixed_width(columns):
        top = parser()
        found = [("distrokit", top.format_help())]
        found.extend((f"distrokit {' '.join(path)}", sub.format_help()) for path, sub in subcommands(top))
    return found


def section(command: str, text: str) -> str:
    return f"## `{command}`\n\n```text\n{text.rstrip()}\n```\n"


def markdown(columns: int = WIDTH) -> str:
    """docs/cli.md: the header, then one section per command, in the order of `distrokit --help`."""
    texts = help_texts(columns)
    contents = "".join(f"- [`{command}`](#{_anchor(command)})\n" for command, _ in texts)
    return "\n".join([HEADER, contents, *(section(command, text) for command, text in texts)])


def _anchor(command: str) -> str:
    """The anchor GitHub gives a `## \\`distrokit pkg build\\`` heading."""
    return command.replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m buildlib.cli.reference", description=__doc__).parse_args(argv)
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
