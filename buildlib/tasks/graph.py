"""The task graph of a build as Graphviz DOT, with what the next build would run marked."""

from __future__ import annotations

from .explain import AFTER_UPSTREAM, RUN, explain
from .identity import public_task_name
from .plan import Plan
from .run import plan_tasks

STYLE = {
    RUN: 'style=filled, fillcolor="#f4a582"',
    AFTER_UPSTREAM: 'style=filled, fillcolor="#fddbc7"',
}
LEGEND = {RUN: "will run", AFTER_UPSTREAM: "will run after upstream", "up-to-date": "up to date"}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(plan: Plan) -> str:
    """One node per task (colour: will it run), one edge per dependency, producer to consumer."""
    explained = {item.task: item.status for item in explain(plan)}
    # names as people read them (`part:hello/files`), as explain gives them
    tasks = {public_task_name(task.name): task for task in plan_tasks(plan) if task.actions and not task.loader}
    layer_names = sorted(name for name in explained if name.startswith("layer:"))
    producers = {target: name for name, task in tasks.items() for target in task.targets}
    lines = ["digraph distrokit {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for name in [*tasks, *layer_names]:
        status = explained.get(name, "up-to-date")
        style = STYLE.get(status, 'color="#888888"')
        lines.append(f"  {_quote(name)} [{style}, tooltip={_quote(LEGEND.get(status, status))}];")
    edges: dict[tuple[str, str], None] = {}
    for name, task in tasks.items():
        for dep in task.file_dep:
            if dep in producers:
                edges[(producers[dep], name)] = None
        for dep in task.task_dep:
            for source in layer_names if dep == "layer" else [dep]:
                if source in tasks or source in layer_names:
                    edges[(source, name)] = None
    lines += [f"  {_quote(a)} -> {_quote(b)};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"
