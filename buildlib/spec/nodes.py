"""The schema engine behind `spec`: YAML nodes in, typed values out, every problem with its position.

PyYAML's `safe_load` throws positions away, so specs are composed into nodes and walked here. A
record's schema is its dataclass: each field declared with `yfield` names its YAML key and its
`FieldType`, and the same table both parses and dumps (`record_to_dict`), so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

T = TypeVar("T")
R = TypeVar("R")

MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class Location:
    """Where a value is in a YAML file (1-based line and column), for error messages."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec; `line` 0 means the whole file (it could not be read)."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line > 0 else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(eq=False)
class Session:
    """What one load shares across its files: the problems found, warnings, resolved packages."""

    resolve_pkg: Callable[[Path], str] | None = None
    # a plain image name a builder makes itself (distrokit/NAME) -> the reference it builds, else None
    resolve_name: Callable[[str], str | None] | None = None
    issues: list[SpecIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # A package folder is resolved once per load even when several images name it: resolving may build it.
    packages: dict[Path, str | BaseException] = field(default_factory=dict)

    def issue_at(self, loc: Location, path: str, message: str) -> None:
        self.issues.append(SpecIssue(loc.file, loc.line, loc.column, path, message))

    def warn_at(self, loc: Location, path: str, message: str) -> None:
        self.warnings.append(str(SpecIssue(loc.file, loc.line, loc.column, path, message)))


@dataclass(eq=False)
class Context:
    """The file being walked: where its nodes are and where its `@pkg:` folders are relative to."""

    file: str
    base_dir: Path
    session: Session

    def location(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def issue(self, node: Node, path: str, message: str) -> None:
        self.session.issue_at(self.location(node), path, message)

    def warn(self, node: Node, path: str, message: str) -> None:
        self.session.warn_at(self.location(node), path, message)

    @property
    def issue_count(self) -> int:
        return len(self.session.issues)


# YAML 1.2 core schema, which LinuxKit's Go parser follows. PyYAML resolves plain scalars by YAML 1.1,
# where `on`, `no`, `1_000` and `1:30` are booleans and numbers; re-typing from the raw text keeps
# `env: [DEBUG=on]`-style values and sexagesimal-looking strings as the strings LinuxKit sees.
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)")
_FLOAT = re.compile(
    r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)"
)

Scalar = str | int | float | bool | None


def scalar_value(node: ScalarNode) -> Scalar:
    text = node.value
    if node.style is not None or node.tag == STR_TAG:  # quoted, block, or an explicit !!str
        return text
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if _INT.fullmatch(text):
        base = 0 if text.lstrip("+-")[:2] in ("0o", "0x") else 10
        return int(text, base)
    if _FLOAT.fullmatch(text):
        special = text.lstrip("+-").lower() in (".inf", ".nan")  # Python spells them inf and nan
        return float(text.replace(".", "", 1) if special else text)
    return text


def describe(node: Node) -> str:
    """How a node reads in a message: 'a mapping', 'a list', 'an integer', ..."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    value = scalar_value(node) if isinstance(node, ScalarNode) else None
    if value is None:
        return "nothing (null)"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names[type(value)]


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class FieldType(Generic[T]):
    """How one YAML value becomes a typed value (`parse`, None when invalid) and back (`dump`)."""

    def parse(self, node: Node, ctx: Context, path: str) -> T | None:
        raise NotImplementedError

    def dump(self, value: T) -> Any:
        return value


class ScalarType(FieldType[T]):
    """A scalar of one of `kinds` (exact types: a bool is not an integer here)."""

    def __init__(self, kinds: tuple[type, ...], what: str) -> None:
        self.kinds = kinds
        self.what = what

    def parse(self, node: Node, ctx: Context, path: str) -> T | None:
        if isinstance(node, ScalarNode):
            value = scalar_value(node)
            if type(value) in self.kinds:
                return value  # type: ignore[return-value]
        ctx.issue(node, path, f"expected {self.what}, got {describe(node)}")
        return None


class Choice(FieldType[str]):
    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def parse(self, node: Node, ctx: Context, path: str) -> str | None:
        value = STR.parse(node, ctx, path)
        if value is None or value in self.choices:
            return value
        ctx.issue(node, path, f"expected one of {', '.join(self.choices)}, got {value!r}")
        return None


class OctalMode(FieldType[int]):
    """A permission mode. LinuxKit wants a string ("0755"); an unquoted 0755 is read from its raw text
    as octal too, since that is what its author meant, whatever YAML version types it as."""

    _OCTAL = re.compile(r"(?:0o)?([0-7]{1,4})")

    def parse(self, node: Node, ctx: Context, path: str) -> int | None:
        if isinstance(node, ScalarNode) and type(scalar_value(node)) in (str, int):
            match = self._OCTAL.fullmatch(node.value.strip())
            if match:
                return int(match.group(1), 8)
            ctx.issue(node, path, f'expected an octal mode such as "0644", got {node.value!r}')
            return None
        ctx.issue(node, path, f'expected an octal mode such as "0644", got {describe(node)}')
        return None

    def dump(self, value: int) -> str:
        return f"{value:04o}"


def sequence_items(node: Node, ctx: Context, path: str) -> list[Node] | None:
    if isinstance(node, SequenceNode):
        return list(node.value)
    ctx.issue(node, path, f"expected a list, got {describe(node)}")
    return None


class ListOf(FieldType[tuple[T, ...]]):
    """A list; invalid items are reported and left out, so later checks still see the valid ones."""

    def __init__(self, item: FieldType[T]) -> None:
        self.item = item

    def parse(self, node: Node, ctx: Context, path: str) -> tuple[T, ...] | None:
        items = sequence_items(node, ctx, path)
        if items is None:
            return None
        parsed = (self.item.parse(child, ctx, f"{path}[{i}]") for i, child in enumerate(items))
        return tuple(value for value in parsed if value is not None)

    def dump(self, value: tuple[T, ...]) -> list[Any]:
        return [self.item.dump(item) for item in value]


Pairs = tuple[tuple[str, str], ...]


class StringMap(FieldType[Pairs]):
    """A string-to-string mapping, kept as ordered (key, value) pairs so records stay hashable."""

    def parse(self, node: Node, ctx: Context, path: str) -> Pairs | None:
        pairs = mapping_pairs(node, ctx, path)
        if pairs is None:
            return None
        values = ((key, STR.parse(value, ctx, join(path, key))) for key, _, value in pairs)
        return tuple((key, value) for key, value in values if value is not None)

    def dump(self, value: Pairs) -> dict[str, str]:
        return dict(value)


def mapping_pairs(node: Node, ctx: Context, path: str) -> list[tuple[str, Node, Node]] | None:
    """The (key, key node, value node) entries of a mapping; duplicate keys are reported and dropped.
    Merge keys (`<<: *anchor`) are honoured as LinuxKit's parser does: explicit keys win."""
    if not isinstance(node, MappingNode):
        ctx.issue(node, path, f"expected a mapping, got {describe(node)}")
        return None
    seen: dict[str, Node] = {}
    pairs: list[tuple[str, Node, Node]] = []
    merged: list[tuple[str, Node, Node]] = []
    for key_node, value_node in node.value:
        if key_node.tag == MERGE_TAG:
            merged.extend(_merge_sources(value_node, ctx, path))
            continue
        if not isinstance(key_node, ScalarNode):
            ctx.issue(key_node, path, f"keys must be strings, got {describe(key_node)}")
            continue
        key = key_node.value
        if key in seen:
            first = seen[key].start_mark
            ctx.issue(key_node, join(path, key), f"duplicate key (first given at line {first.line + 1})")
            continue
        seen[key] = key_node
        pairs.append((key, key_node, value_node))
    for entry in merged:  # earlier merge sources win over later ones, as YAML's merge key defines
        if entry[0] not in seen:
            seen[entry[0]] = entry[1]
            pairs.append(entry)
    return pairs


def _merge_sources(node: Node, ctx: Context, path: str) -> list[tuple[str, Node, Node]]:
    sources = node.value if isinstance(node, SequenceNode) else [node]
    entries: list[tuple[str, Node, Node]] = []
    for source in sources:
        entries.extend(mapping_pairs(source, ctx, path) or [])
    return entries


STR: ScalarType[str] = ScalarType((str,), "a string")
INT: ScalarType[int] = ScalarType((int,), "an integer")
BOOL: ScalarType[bool] = ScalarType((bool,), "a boolean")
ID: ScalarType[int | str] = ScalarType((int, str), "a name or a number")


# ---- records: a dataclass whose `yfield`s are its schema ----------------------------------------


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def ymeta(kind: FieldType[Any], key: str | None = None, *, required: bool = False) -> dict[str, Any]:
    """Metadata naming a field's YAML key (default: its name in camelCase) and its type."""
    return {"yaml": (kind, key, required)}


def yfield(kind: FieldType[Any], key: str | None = None, *, default: Any = None) -> Any:
    """An optional YAML field; `None` (the default default) means "not given"."""
    return field(default=default, metadata=ymeta(kind, key))


@dataclass(frozen=True)
class YamlField:
    """How one field of a record is read from YAML: its key, its type, and its default."""

    name: str
    key: str
    kind: FieldType[Any]
    required: bool
    default: Any


_TABLES: dict[type, dict[str, YamlField]] = {}


def yaml_fields(cls: type) -> dict[str, YamlField]:
    """The YAML keys of a record class, in declaration order (which is also the dump order)."""
    if cls in _TABLES:
        return _TABLES[cls]
    table = _TABLES[cls] = {}
    for f in dataclasses.fields(cls):
        if "yaml" in f.metadata:
            kind, key, required = f.metadata["yaml"]
            key = key or _camel(f.name)
            table[key] = YamlField(f.name, key, kind, required, f.default)
    return table


def unknown_key(key: str, known: list[str]) -> str:
    import difflib  # only a spec with a mistake pays for it

    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    if len(known) <= 10:
        return f"unknown key (expected one of: {', '.join(known)})"
    return "unknown key"


def parse_fields(node: Node, ctx: Context, path: str, cls: type) -> dict[str, Any] | None:
    """The given, valid fields of a `cls` record as keyword arguments; None when it cannot be built
    (not a mapping, or a required key missing or invalid). Every problem is reported on the way."""
    pairs = mapping_pairs(node, ctx, path)
    if pairs is None:
        return None
    table = yaml_fields(cls)
    values: dict[str, Any] = {}
    for key, key_node, value_node in pairs:
        spec = table.get(key)
        if spec is None:
            ctx.issue(key_node, join(path, key), unknown_key(key, list(table)))
            continue
        value = spec.kind.parse(value_node, ctx, join(path, key))
        if value is not None:
            values[spec.name] = value
    given = {key for key, _, _ in pairs}
    complete = True
    for spec in table.values():
        if spec.required and spec.name not in values:
            complete = False
            if spec.key not in given:
                ctx.issue(node, path, f"missing required key '{spec.key}'")
    return values if complete else None


Check = Callable[[Node, Context, str, dict[str, Any]], None]


class Record(FieldType[R]):
    """A mapping parsed into the record class `cls`. A `location` field, if the class has one, gets the
    mapping's position. `check`, for rules across fields, runs only on a record that parsed cleanly,
    so one mistake is not reported twice; it may adjust the keyword arguments in place."""

    def __init__(self, cls: type[R], check: Check | None = None) -> None:
        self.cls = cls
        self.check = check

    def parse(self, node: Node, ctx: Context, path: str) -> R | None:
        before = ctx.issue_count
        values = parse_fields(node, ctx, path, self.cls)
        if values is None:
            return None
        if self.check is not None and ctx.issue_count == before:
            self.check(node, ctx, path, values)
        if any(f.name == "location" for f in dataclasses.fields(self.cls)):  # type: ignore[arg-type]
            values["location"] = ctx.location(node)
        return self.cls(**values)

    def dump(self, value: R) -> dict[str, Any]:
        return record_to_dict(value)


def record_to_dict(record: Any) -> dict[str, Any]:
    """A record as plain JSON-able data under its YAML keys, leaving out fields at their default."""
    out: dict[str, Any] = {}
    for spec in yaml_fields(type(record)).values():
        value = getattr(record, spec.name)
        if value is not None and not (spec.default is not dataclasses.MISSING and value == spec.default):
            out[spec.key] = spec.kind.dump(value)
    return out


class YamlRecord:
    """Mixin for record dataclasses: `to_dict` in LinuxKit's key names, only the fields given."""

    def to_dict(self) -> dict[str, Any]:
        return record_to_dict(self)


def compose_yaml(text: str) -> Node | None:
    """libyaml's parser when there is one (a monorepo loads hundreds of specs per `doit` run); a text it
    refuses is parsed again by PyYAML's, whose error messages the user sees."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        try:
            root = yaml.compose(text, Loader=fast)
        except (yaml.YAMLError, UnicodeEncodeError):  # libyaml takes only what encodes as UTF-8
            return yaml.compose(text, Loader=yaml.SafeLoader)
        _plain_style_as_pyyaml(root)
        return root
    return yaml.compose(text, Loader=yaml.SafeLoader)


def check_yaml_file(text: str, path: Path, record: FieldType[R], error: type[Exception]) -> R | None:
    """`text` (the file `path`) parsed by `record`, None for an empty document; `error` listing every problem,
    one `FILE:LINE:COL: field: what` a line (a YAML syntax error with its place, when it has one)."""
    session = Session()
    try:
        root = compose_yaml(text)
    except yaml.MarkedYAMLError as problem:
        mark = problem.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML: {problem.problem or problem}") from problem
    except yaml.YAMLError as problem:
        raise error(f"{path}: not valid YAML: {problem}") from problem
    value = record.parse(root, Context(str(path), path.parent, session), "") if root is not None else None
    if session.issues:
        raise error("\n".join(str(issue) for issue in session.issues))
    return value


def _plain_style_as_pyyaml(node: Node | None) -> None:
    """libyaml marks a plain scalar with style '' where PyYAML gives None: make them alike."""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:  # an alias is the node it names: visit it once (anchors may recurse)
            continue
        seen.add(id(current))
        if isinstance(current, ScalarNode):
            if current.style == "":
                current.style = None
        elif isinstance(current, MappingNode):
            stack.extend(item for pair in current.value for item in pair)
        elif current is not None:
            stack.extend(current.value)
