"""Mis-indented spec lines, explained in the spec's own terms.

PyYAML reports a key or list item at the wrong column as `expected <block end>, but found '?'` or
`mapping values are not allowed here`, which says nothing about the spec. From the text alone this
module finds what the line was meant to be (`services[1]`, `kernel.cmdline`) and the line it should
line up with, so the message says which key is where and how many spaces it needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^(?P<indent> *)(?P<dash>-\s+)?(?:(?P<key>[^\s#'\"\-][^:#]*?)\s*:(?:\s+(?P<value>\S.*)|\s*$))?")
INDENTATION_PROBLEMS = ("expected <block end>", "mapping values are not allowed here")


@dataclass(frozen=True)
class _Line:
    """What one line of YAML starts with: a list dash, a key, and where."""

    number: int  # 1-based
    dash: int | None  # column of `- ` for a list item
    key: str | None
    key_column: int  # column of the key (after `- ` for an item)
    has_value: bool  # `key: value`, not `key:` opening a block

    @property
    def column(self) -> int:
        """The column that places this line in the structure: the dash of an item, else the key."""
        return self.dash if self.dash is not None else self.key_column

    @property
    def opens_block(self) -> bool:
        return self.key is not None and not self.has_value


def _parse(number: int, text: str) -> _Line | None:
    stripped = text.strip()
    if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
        return None
    match = _LINE.match(text)
    if match is None or (match.group("dash") is None and match.group("key") is None):
        return None
    indent = len(match.group("indent"))
    dash = indent if match.group("dash") else None
    key_column = indent + len(match.group("dash") or "")
    return _Line(number, dash, match.group("key"), key_column, bool(match.group("value")))


def _parent(lines: list[_Line], index: int) -> int | None:
    """The line that holds line `index`: a block-opening key left of it, or (for a key) the item it is in."""
    line = lines[index]
    for j in range(index - 1, -1, -1):
        above = lines[j]
        if line.dash is None and above.dash is not None and above.dash < line.key_column:
            return j
        if above.opens_block and above.key_column < line.column:
            return j
    return None


def _siblings(lines: list[_Line], index: int, parent: int | None) -> list[int]:
    """Earlier lines of the same kind (items, or keys) directly inside the same parent."""
    line = lines[index]
    start = 0 if parent is None else parent + 1
    found: list[int] = []
    first_column: int | None = None
    if parent is not None and line.dash is None and lines[parent].dash is not None:
        first_column = lines[parent].key_column  # an item's first key is on the item's own line
    for j in range(start, index):
        if _parent(lines, j) != parent or (lines[j].dash is None) != (line.dash is None):
            continue
        if first_column is None:
            first_column = lines[j].column
        if lines[j].column == first_column:
            found.append(j)
    return found


def _path(lines: list[_Line], index: int) -> str:
    line = lines[index]
    parent = _parent(lines, index)
    prefix = "" if parent is None else _path(lines, parent)
    if line.dash is not None:
        return f"{prefix}[{len(_siblings(lines, index, parent))}]"
    return f"{prefix}.{line.key}" if prefix else str(line.key)


def _label(lines: list[_Line], index: int) -> str:
    """How to name a line in a message: an item line by its key (`services[0].name`), else its path."""
    path, line = _path(lines, index), lines[index]
    return f"{path}.{line.key}" if line.dash is not None and line.key is not None else path


def explain_indentation(text: str, line_number: int) -> str | None:
    """Our message for a YAML error at 1-based `line_number`, when that line is a mis-indented key or item."""
    lines: list[_Line] = []
    target: int | None = None
    for number, raw in enumerate(text.splitlines()[:line_number], start=1):
        parsed = _parse(number, raw)
        if parsed is not None:
            lines.append(parsed)
            if number == line_number:
                target = len(lines) - 1
    if target is None or target == 0:
        return None
    line = lines[target]
    parent = _parent(lines, target)
    siblings = _siblings(lines, target, parent)
    if parent is not None and line.dash is None and lines[parent].dash is not None:
        expected, model = lines[parent].key_column, parent
    elif siblings:
        expected, model = lines[siblings[0]].column, siblings[0]
    else:
        return None
    if line.column == expected:
        return None
    name = _path(lines, target)
    spaces = f"{line.column} space{'s' if line.column != 1 else ''}"
    model_name = _path(lines, model) if line.dash is not None else _label(lines, model)
    where = f"`{model_name}` (line {lines[model].number}) is at {expected}"
    fix = f"indent it {expected} spaces to line it up"
    if line.column > expected:
        holder = f"`{_label(lines, target - 1)}` (line {lines[target - 1].number})"
        return f"`{name}` is indented under {holder}: it is at {spaces}, but {where}; {fix}"
    if parent is not None and line.dash is None and lines[parent].dash is None and line.column > lines[parent].column:
        fix += f", or {lines[parent].column} to put it beside `{_label(lines, parent)}`"
    return f"`{name}` is indented {spaces}, but {where}; {fix}"
