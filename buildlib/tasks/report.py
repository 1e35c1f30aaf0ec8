"""What doit's runner tells the world about a build: which tasks ran, how long each took, what failed.

`RecordingReporter` keeps the lists a `BuildReport` needs and hands every step to a listener (the
CLI's live view) as a `TaskEvent`. A task that failed with a DistrokitError fails with a
`HandledFailure`: the caller raises that error itself, so doit's own failure block (`TaskFailed -
taskid:...`, `########`, empty `<stderr>:`/`<stdout>:`) would only repeat it. With
`failure_verbosity` above 0 (the CLI's --debug) doit reports it in full as usual.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from doit.exceptions import TaskFailed
from doit.reporter import ConsoleReporter

from .identity import is_publish, public_task_name


class HandledFailure(TaskFailed):  # type: ignore[misc]
    """A task's DistrokitError, which whoever runs the plan reports (once) in its own words."""


class TaskEventKind(enum.Enum):
    START = "start"
    DONE = "done"
    UP_TO_DATE = "up-to-date"
    FAILED = "failed"


@dataclass(frozen=True, eq=False)
class TaskEvent:
    """One task started, finished, was up to date or failed, as the reporter tells listeners."""

    kind: TaskEventKind
    task: str
    seconds: float = 0.0
    message: str = ""


TaskListener = Callable[[TaskEvent], None]


def _counted(task: Any) -> bool:
    """A task a report names: one with actions, other than the publishing of a spec's outputs."""
    return bool(task.actions) and not is_publish(task)


class RecordingReporter(ConsoleReporter):  # type: ignore[misc]
    """doit's console report, also kept as lists and told to `listener`.

    With a listener, the listener shows progress and this writes nothing of its own; `echo_handled`
    writes a handled failure as one line (for `doit` run from dodo.py, where nobody else reports it)."""

    last: RecordingReporter | None = None

    def __init__(
        self, outstream: Any, options: Any, listener: TaskListener | None = None, echo_handled: bool = True
    ) -> None:
        super().__init__(outstream, options)
        self.executed: list[str] = []
        self.skipped: list[str] = []
        self.seconds: dict[str, float] = {}
        self.listener = listener
        self.echo_handled = echo_handled
        self._started: dict[str, float] = {}
        RecordingReporter.last = self

    def _tell(self, kind: TaskEventKind, task: Any, seconds: float = 0.0, message: str = "") -> None:
        if self.listener is not None and _counted(task):
            self.listener(TaskEvent(kind, public_task_name(task.name), seconds, message))

    def _elapsed(self, task: Any) -> float:
        seconds = time.monotonic() - self._started.pop(task.name, time.monotonic())
        self.seconds[public_task_name(task.name)] = seconds
        return seconds

    def execute_task(self, task: Any) -> None:
        if _counted(task):
            self.executed.append(task.name)
            self._started[task.name] = time.monotonic()
        self._tell(TaskEventKind.START, task)
        if self.listener is None:
            super().execute_task(task)

    def add_success(self, task: Any) -> None:
        self._tell(TaskEventKind.DONE, task, self._elapsed(task))

    def skip_uptodate(self, task: Any) -> None:
        if _counted(task):
            self.skipped.append(task.name)
        self._tell(TaskEventKind.UP_TO_DATE, task)
        if self.listener is None:
            super().skip_uptodate(task)

    def add_failure(self, task: Any, fail: Any) -> None:
        self._tell(TaskEventKind.FAILED, task, self._elapsed(task), fail.get_msg().strip())
        if not isinstance(fail, HandledFailure) or self.failure_verbosity > 0:
            super().add_failure(task, fail)
        elif self.echo_handled:
            self.write(f"{public_task_name(task.name)} failed: {fail.get_msg().strip()}\n")
