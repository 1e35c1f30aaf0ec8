"""Why a task will run: the changed input (old key against new), the missing target, the upstream task.

It asks doit's own dependency database the same question the runner asks, without running anything.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from doit.dependency import Dependency, SqliteDB
from doit.loader import generate_tasks
from doit.task import Task

from ..outputs.staging import WrittenOutputs
from ..spec.refs import ImageRef
from .families import StoreCheck, record_path
from .identity import is_publish, public_task_name
from .keys import InputKeys, XXHashChecker
from .plan import Plan
from .portable import store_codec
from .run import plan_tasks
from .terms import Terms

RUN, UP_TO_DATE, AFTER_UPSTREAM = "run", "up-to-date", "after upstream"
FAMILIES = ("component", "image", "layer", "part", "output")


@dataclass(frozen=True)
class Explanation:
    task: str
    status: str
    reasons: tuple[str, ...]


# What an uptodate check that is not a key means when it fails, per task family: no docstrings.
UNMET = {
    "component": "component image not in the store yet",
    "image": "image not in the store yet (or --pull asked for it)",
    "layer": "layer not indexed yet",
}


def explain(plan: Plan) -> list[Explanation]:
    """For every task of the plan, whether it will run and why (layer tasks appear once images are recorded)."""
    tasks = [task for task in plan_tasks(plan) if not task.loader and not is_publish(task)]
    tasks += list(_layer_tasks(plan))
    tasks.sort(key=lambda task: FAMILIES.index(task.name.split(":", 1)[0]))
    by_name = {task.name: task for task in tasks}
    records = {str(record_path(plan.store, ref)): ImageRef.parse(ref).familiar() for ref in plan.refs}
    plan.store.root.mkdir(parents=True, exist_ok=True)  # a new store: sqlite cannot open its database otherwise
    database = str(plan.store.root / "doit.db")
    dependency = Dependency(SqliteDB, database, checker_cls=XXHashChecker, codec_cls=store_codec(plan.store.root))
    try:
        direct = {task.name: _direct_reasons(dependency, task, by_name, records) for task in tasks if task.actions}
    finally:
        dependency.close()
    return [replace(item, task=public_task_name(item.task)) for item in _with_upstream(direct, by_name)]


def _layer_tasks(plan: Plan) -> Iterable[Task]:
    return [task for task in generate_tasks("layer", plan.layer_tasks()) if task.actions]


def _direct_reasons(
    dependency: Dependency, task: Task, by_name: dict[str, Task], records: dict[str, str]
) -> tuple[str, ...] | None:
    known = dependency.backend.in_(task.name)
    status = dependency.get_status(task, by_name, get_log=True)
    if status.status == "up-to-date":
        return None
    family = task.name.split(":", 1)[0]
    if not known:  # a task that failed last has no record either: what the store holds may say why
        found = [line for check, _, _ in task.uptodate if isinstance(check, StoreCheck) for line in check.unmet()]
        return tuple(found) or (FORGOTTEN if _looks_built(task) else _never_built(family) + _new_container(task),)
    values = dependency.get_values(task.name)
    said = [line for check, _, _ in task.uptodate if isinstance(check, Terms) for line in check.changes(values)]
    reasons: list[str] = []
    for key, args in status.reasons.items():
        reasons.extend(_describe(key, args, values, family, records, said))
    return tuple(dict.fromkeys([*said, *reasons])) or (_never_built(family),)


FORGOTTEN = (
    "no record of its last build in the store's doit database, though its results are there "
    "(`doit forget`, or another database): it runs once to record its inputs"
)


def _looks_built(task: Task) -> bool:
    """A task doit has no record of whose results exist all the same (its record was forgotten)."""
    if task.targets:
        return all(os.path.exists(target) for target in task.targets)
    checks = [check for check, _, _ in task.uptodate if callable(check) and not isinstance(check, (InputKeys, Terms))]
    try:
        return bool(checks) and all(check() for check in checks)
    except TypeError:  # a check that wants doit's arguments: cannot tell
        return False


def _new_container(task: Task) -> str:
    """For a container's part never built: which container it is, as the spec names it."""
    for check, _, _ in task.uptodate:
        if isinstance(check, Terms):
            labels = [name.split(": ", 1)[0] for name in check.compute() if "]" in name.split(": ", 1)[0]]
            if labels and labels[0].startswith(("onboot[", "onshutdown[", "services[")):
                return f": {labels[0]} is new to this build (an added or renamed container)"
    return ""


def _never_built(family: str) -> str:
    return UNMET.get(family, "never built with this store") if family in ("component", "layer") else "never built"


def _describe(
    key: str, args: Any, values: dict[str, Any], family: str, records: dict[str, str], said: list[str]
) -> list[str]:
    if key == "uptodate_false":  # each reason once, however many checks say it
        return list(dict.fromkeys(line for utd, _, _ in args for line in _describe_uptodate(utd, values, family)))
    if key in ("changed_file_dep", "missing_file_dep"):
        return [_file_dep(key, path, records, said) for path in args if not _already_said(path, records, said)]
    if key in ("added_file_dep", "removed_file_dep"):
        return [f"{key.split('_')[0]} input: {_input_name(path, records)}" for path in args or ()]
    if key == "missing_target":
        return [f"missing output: {path}" for path in args]
    if key == "has_no_dependencies":
        return ["always runs (no dependencies)"]
    if key == "checker_changed":
        return ["the file checker changed since the last build"]
    return [key.replace("_", " ")]


def _already_said(path: str, records: dict[str, str], said: list[str]) -> bool:
    ref = records.get(path)
    return ref is not None and any(line.startswith(f"image {ref}:") for line in said)


def _file_dep(key: str, path: str, records: dict[str, str], said: list[str]) -> str:
    if path in records:
        return f"image {records[path]}: recorded digest changed"
    return f"{'changed' if key == 'changed_file_dep' else 'missing'} input: {_input_name(path, records)}"


def _input_name(path: str, records: dict[str, str]) -> str:
    """A dependency as the user knows it: an image, a part of the root (its segment pointer), or a file."""
    if path in records:
        return f"image {records[path]}"
    if path.endswith(".segment"):
        return f"part {Path(path).parent.name}/{Path(path).stem}"
    return path


def _describe_uptodate(utd: Any, values: dict[str, Any], family: str) -> list[str]:
    if isinstance(utd, InputKeys):
        changes = utd.changes(values)
        if not values:
            return ["never built"]
        return [f"key {name!r} changed: {old or 'none'} -> {new or 'none'}" for name, old, new in changes]
    if isinstance(utd, WrittenOutputs):
        problem = utd.problem()
        return [problem] if problem else []
    if isinstance(utd, StoreCheck) and (found := utd.unmet()):
        return found
    condition = _condition(utd)
    if condition:
        return [f"not so any more: {condition}"]
    return [UNMET.get(family, "a check of the store failed")]


def _condition(check: Any) -> str:
    """What a plain check function says holds when a task is up to date: its docstring's first line."""
    function = check.func if isinstance(check, functools.partial) else check
    if not (inspect.isfunction(function) or inspect.ismethod(function)):
        return ""
    return (inspect.getdoc(function) or "").split("\n", 1)[0].strip()


def _with_upstream(direct: dict[str, tuple[str, ...] | None], by_name: dict[str, Task]) -> list[Explanation]:
    """Up-to-date tasks downstream of a task that runs will run too: say which."""
    producers = {target: task.name for task in by_name.values() for target in task.targets}
    result: list[Explanation] = []
    running: set[str] = {name for name, reasons in direct.items() if reasons}
    for name, reasons in direct.items():
        task = by_name[name]
        upstream = sorted(
            {producers[dep] for dep in task.file_dep if producers.get(dep) in running}
            | {dep for dep in task.task_dep if dep in running}
        )
        if reasons:
            result.append(Explanation(name, RUN, reasons))
        elif upstream:
            running.add(name)
            reasons = tuple(f"input rebuilt by {public_task_name(up)}" for up in upstream)
            result.append(Explanation(name, AFTER_UPSTREAM, reasons))
        else:
            result.append(Explanation(name, UP_TO_DATE, ()))
    return result
