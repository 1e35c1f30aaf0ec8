"""The house keeps its plan: buildlib's packages are the stages of docs/architecture.md, imports run one
way (a stage imports only the stages before it and the shared helpers), no module imports one that
imports it back, only `tasks` knows doit, and no module or function grows past what a reader holds.

Every import counts: at the top, inside a function, under TYPE_CHECKING, and `lazy_module("...")`."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "buildlib"
SHARED = (
    "buildlib",
    "buildlib.errors",
    "buildlib.fsutil",
    "buildlib.lazy",
    "buildlib.epoch",
    "buildlib.arches",
    "buildlib.collector",
    "buildlib.interrupts",
)
# The flow, first to last: a stage may import the shared helpers and any stage before it, never one after.
STAGES = ("spec", "store", "dockerfile", "debian", "rootfs", "outputs", "release", "guest", "upkeep", "tasks", "cli")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (or the module a name is imported from)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _absolute(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _known(name: str) -> str:
    """The module `name` is, or is in (an imported name's own module)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports_of(module: str) -> Iterator[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path.name == "__init__.py", node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield Import(module, full if full in MODULES else base, node.lineno)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "lazy_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield Import(module, str(node.args[0].value), node.lineno)


def lazy_generators(module: str) -> Iterator[Import]:
    """The modules a `lazy_module(name) for name in ("buildlib.a", ...)` generator names."""
    path = MODULES[module]
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.GeneratorExp)
            and getattr(getattr(node.elt, "func", None), "id", "") == "lazy_module"
            and isinstance(node.generators[0].iter, ast.Tuple)
        ):
            for element in node.generators[0].iter.elts:
                if isinstance(element, ast.Constant):
                    yield Import(module, str(element.value), node.lineno)


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for found in [*imports_of(module), *lazy_generators(module)]:
            if found.target.startswith("buildlib") and _known(found.target) != module:
                edges[module].add(_known(found.target))
    return edges


def stage_of(module: str) -> int | None:
    """The index of `module`'s stage in STAGES; None for a shared helper."""
    if module in SHARED:
        return None
    return STAGES.index(module.split(".")[1])


def test_every_module_lies_in_a_stage_or_is_a_shared_helper() -> None:
    strays = [m for m in MODULES if m not in SHARED and m.split(".")[1] not in STAGES]
    assert not strays, f"modules outside the stages of docs/architecture.md: {strays}"


def test_imports_run_one_way_down_the_flow() -> None:
    against = []
    for module in MODULES:
        for found in [*imports_of(module), *lazy_generators(module)]:
            target = _known(found.target)
            if not target.startswith("buildlib") or target == module:
                continue
            mine, theirs = stage_of(module), stage_of(target)
            if theirs is None:
                continue
            if mine is None or theirs > mine:
                against.append(f"{module}:{found.line} imports {target}")
    assert not against, "imports against the flow:\n" + "\n".join(against)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_only_tasks_imports_doit() -> None:
    offenders = [
        f"{found.source}:{found.line}"
        for module in MODULES
        for found in imports_of(module)
        if found.target.split(".")[0] == "doit" and not module.startswith("buildlib.tasks")
    ]
    assert not offenders, f"doit imported outside buildlib.tasks: {offenders}"


def test_every_stage_package_says_what_it_takes_gives_and_never_imports() -> None:
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse(MODULES[f"buildlib.{stage}"].read_text())) or ""
        assert doc, f"buildlib/{stage}/__init__.py has no docstring"
        assert "never" in doc or "only" in doc, f"buildlib/{stage}/__init__.py does not say what it must not import"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module: str) -> None:
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{module} has {len(text.splitlines())} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{module}: functions over {MAX_FUNCTION_LINES} lines: {long}"


def test_a_module_named_for_the_type_checker_alone_is_loaded_at_run_time_too() -> None:
    """`if TYPE_CHECKING: from .. import x` with an `else:` of lazy_module: every module the type checker
    sees there and the code reads (x.name) is bound at run time too, or the command fails with NameError."""
    unbound = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        read = {n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}
        for node in tree.body:
            if not (isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING" and node.orelse):
                continue
            typed = {a.asname or a.name for s in node.body if isinstance(s, ast.ImportFrom) for a in s.names}
            bound = {n.id for s in node.orelse for n in ast.walk(s) if isinstance(n, ast.Name)}
            unbound += [f"{module}: {name}" for name in sorted((typed & read) - bound)]
    assert not unbound, f"read at run time but bound only for the type checker: {unbound}"
