"""The component recipes that come with distrokit, described: what each is and which LinuxKit package
it stands in for (`distrokit components`).

What each is comes from the recipe's own opening comment; the LinuxKit package from the table in the
components folder's README.md, the one place both are documented, so the list cannot drift from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .recipes import RECIPE, builtin_components

README = "README.md"
_TABLE_ROW = re.compile(r"^\|\s*(?P<linuxkit>[^|]+?)\s*\|\s*(?P<component>[a-z0-9_.-]+)\s*\|")


@dataclass(frozen=True)
class Component:
    name: str
    folder: Path
    summary: str  # the recipe's opening comment, as one line
    linuxkit: str  # the LinuxKit package it stands in for, "" when none


def catalog(root: Path | None = None) -> list[Component]:
    """Every recipe under `root` (the built-in ones by default), by name."""
    root = root or builtin_components()
    stands_in = _linuxkit_packages(root / README)
    return [
        Component(recipe.parent.name, recipe.parent, summary(recipe), stands_in.get(recipe.parent.name, ""))
        for recipe in sorted(root.glob(f"*/{RECIPE}"))
    ]


def summary(recipe: Path) -> str:
    """The opening comment of a recipe as one line: its first sentence, without a leading "LinuxKit's
    NAME:" (the LinuxKit column says that)."""
    lines = []
    for line in recipe.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = re.sub(r"^LinuxKit's \S+?: ", "", " ".join(lines))
    first = re.match(r"(.+?[^.])\.(\s|$)", text)  # not the dots of an ellipsis
    sentence = first.group(1) if first else text
    return sentence[:1].upper() + sentence[1:]


def _linuxkit_packages(readme: Path) -> dict[str, str]:
    """component -> LinuxKit package, from the README's table headed `| LinuxKit package | distrokit
    component |` (a component may stand for several packages: the first row names it)."""
    found: dict[str, str] = {}
    lines = readme.read_text().splitlines() if readme.is_file() else []
    start = next((i for i, line in enumerate(lines) if line.startswith("| LinuxKit package |")), len(lines))
    for line in lines[start + 2 :]:  # past the header and its rule
        row = _TABLE_ROW.match(line)
        if row is None:
            break
        if "-" not in (row["linuxkit"], row["component"]):  # "-": no counterpart
            found.setdefault(row["component"], row["linuxkit"])
    return found
