"""A test aid: the order doit sees the tasks in, shuffled.

doit walks its task list in the order given and each task's dependencies in the order they are named;
with `-n` it starts whatever is ready in that order. A task that reads a file it does not depend on
succeeds when the plan's order happens to write that file first: shuffling the order (and so which
ready task a worker takes next) lets a test meet the orders a user's machine may meet.
`DISTROKIT_SHUFFLE_SEED=N` turns it on, read only here; unset, the task list goes to doit untouched.
The seed makes a failing order reproducible.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from doit.task import Task

from ..errors import BadInput

SHUFFLE_ENV = "DISTROKIT_SHUFFLE_SEED"

T = TypeVar("T")


def shuffle_seed(environ: Mapping[str, str] | None = None) -> int | None:
    """The seed `DISTROKIT_SHUFFLE_SEED` names, or None when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(SHUFFLE_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{SHUFFLE_ENV}={value!r}: give an integer seed, or leave it unset") from None


def shuffled(items: Iterable[T], rng: random.Random) -> list[T]:
    out = list(items)
    rng.shuffle(out)
    return out


def shuffled_tasks(tasks: list[Task], seed: int | None) -> list[Task]:
    """`tasks` in an order drawn from `seed`, each one's task dependencies shuffled too (doit reaches a
    task's dependencies in the order they are named). None: the list itself, as it came."""
    if seed is None:
        return tasks
    rng = random.Random(seed)
    for task in tasks:
        task.task_dep = shuffled(task.task_dep, rng)
    return shuffled(tasks, rng)


def shuffled_dicts(tasks: Iterable[dict[str, Any]], seed: int | None) -> Iterable[dict[str, Any]]:
    """Task dicts a delayed loader yields (the layer family), in an order drawn from `seed`."""
    return tasks if seed is None else shuffled(tasks, random.Random(seed))
