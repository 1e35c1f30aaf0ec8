"""Why a task will run: the changed input (old key against new), the missing target, the upstream task.

It asks doit's own dependency database the same question the runner asks, without running anything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from doit.dependency import Dependency, SqliteDB
from doit.loader import generate_tasks
from doit.task import Task

from .families import Plan
from .identity import public_task_name
from .keys import InputKeys, XXHashChecker
from .run import plan_tasks

RUN, UP_TO_DATE, AFTER_UPSTREAM = "run", "up-to-date", "after upstream"
FAMILIES = ("component", "image", "layer", "part", "output")


@dataclass(frozen=True)
class Explanation:
    task: str
    status: str
    reasons: tuple[str, ...]


def explain(plan: Plan) -> list[Explanation]:
    """For every task of the plan, whether it will run and why (layer tasks appear once images are recorded)."""
    tasks = [task for task in plan_tasks(plan) if not task.loader] + list(_layer_tasks(plan))
    tasks.sort(key=lambda task: FAMILIES.index(task.name.split(":", 1)[0]))
    by_name = {task.name: task for task in tasks}
    dependency = Dependency(SqliteDB, str(plan.store.root / "doit.db"), checker_cls=XXHashChecker)
    try:
        direct = {task.name: _direct_reasons(dependency, task, by_name) for task in tasks if task.actions}
    finally:
        dependency.close()
    return [replace(item, task=public_task_name(item.task)) for item in _with_upstream(direct, by_name)]


def _layer_tasks(plan: Plan) -> Iterable[Task]:
    return [task for task in generate_tasks("layer", plan.layer_tasks()) if task.actions]


def _direct_reasons(dependency: Dependency, task: Task, by_name: dict[str, Task]) -> tuple[str, ...] | None:
    known = dependency.backend.in_(task.name)
    status = dependency.get_status(task, by_name, get_log=True)
    if status.status == "up-to-date":
        return None
    if not known:
        return ("never built",)
    values = dependency.get_values(task.name)
    reasons: list[str] = []
    for key, args in status.reasons.items():
        reasons.extend(_describe(key, args, values))
    return tuple(reasons) or ("never built",)


def _describe(key: str, args: Any, values: dict[str, Any]) -> list[str]:
    if key == "uptodate_false":
        return [line for utd, _, _ in args for line in _describe_uptodate(utd, values)]
    if key in ("changed_file_dep", "missing_file_dep"):
        return [f"{key.replace('_', ' ')}: {path}" for path in args]
    if key == "missing_target":
        return [f"missing output: {path}" for path in args]
    if key == "has_no_dependencies":
        return ["always runs (no dependencies)"]
    if key == "checker_changed":
        return ["the file checker changed since the last build"]
    return [key.replace("_", " ")]


def _describe_uptodate(utd: Any, values: dict[str, Any]) -> list[str]:
    if isinstance(utd, InputKeys):
        changes = utd.changes(values)
        if not values:
            return ["never built"]
        return [f"input {name!r} changed: {old or 'none'} -> {new or 'none'}" for name, old, new in changes]
    doc = str(getattr(utd, "__doc__", None) or getattr(utd, "__name__", None) or "check").strip().splitlines()[0]
    return [f"not satisfied: {doc}"]


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
