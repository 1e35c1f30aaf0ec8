"""A build you can watch: what `distrokit build` shows while doit runs the plan.

On a terminal, a live view redrawn a few times a second: tasks done of total, the running ones with
their elapsed time, the bytes and speed of image pulls; when the build ends, the slowest tasks. Not
on a terminal, one plain line per task that ran. Quiet, nothing but warnings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from ..store.transport import Event, EventKind
from .common import human_size

if TYPE_CHECKING:  # the tasks package loads doit: only a build, which has loaded it already, needs it
    from ..tasks import TaskEvent

SLOWEST_SHOWN = 5


def _verb(name: str) -> str:
    """How a transfer is shown: .deb files are downloads (apt), everything else an image pull."""
    return f"download {name}" if name.endswith(".deb") else f"pull {name}"


@dataclass(eq=False)
class _Transfer:
    """One pull or download in progress: when it started and the bytes landed so far."""

    started: float
    bytes: int = 0


@dataclass(eq=False)
class BuildView:
    """Listens to task events (from the reporter) and transfer events (pulls, .deb downloads) at once.

    It writes to the stream it was given, never to whatever `sys.stderr` is at the time: doit swaps
    that for a capture buffer while an action runs, and events arrive from inside actions."""

    stream: IO[str]
    quiet: bool = False
    live: Any = None
    done: int = 0
    up_to_date: int = 0
    seen: set[str] = field(default_factory=set)
    running: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    transfers: dict[str, _Transfer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def interactive(self) -> bool:
        return not self.quiet and self.stream.isatty()

    def __enter__(self) -> BuildView:
        if self.interactive:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, highlight=False, soft_wrap=True)
            self.live = Live(console=console, refresh_per_second=4, transient=True, get_renderable=self.render)
            self.live.start()
        return self

    def say(self, text: str) -> None:
        """One line, above the live view when there is one."""
        if self.live is not None:
            self.live.console.print(text, markup=False, highlight=False)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # listeners -------------------------------------------------------------------------------
    def task(self, event: TaskEvent) -> None:
        from ..tasks import TaskEventKind

        with self.lock:
            self.seen.add(event.task)
            if event.kind is TaskEventKind.START:
                self.running[event.task] = time.monotonic()
            elif event.kind is TaskEventKind.UP_TO_DATE:
                self.up_to_date += 1
            else:
                self.running.pop(event.task, None)
                self.done += 1
                self.seconds[event.task] = event.seconds
        if not self.interactive and not self.quiet and event.kind is TaskEventKind.DONE:
            self.say(f"ran {event.task} ({event.seconds:.1f} s)")

    def transfer(self, event: Event) -> None:
        if event.kind is EventKind.WARNING:
            self.say(f"warning: {event.name}: {event.message}")
            return
        with self.lock:
            if event.kind is EventKind.START:
                self.transfers[event.name] = _Transfer(time.monotonic())
            elif event.kind is EventKind.DONE:
                self.transfers.pop(event.name, None)
            elif event.name in self.transfers:
                self.transfers[event.name].bytes = event.bytes
        if self.interactive or self.quiet:
            return
        if event.kind is EventKind.RETRY:
            self.say(f"{_verb(event.name)}: attempt {event.attempt} failed ({event.message})")
        elif event.kind is EventKind.DONE:
            speed = human_size(int(event.bytes / event.seconds)) if event.seconds > 0 else "-"
            self.say(f"{_verb(event.name)}: {human_size(event.bytes)} in {event.seconds:.1f} s ({speed}/s)")

    # drawing ---------------------------------------------------------------------------------
    def counts(self) -> str:
        finished = self.done + self.up_to_date
        total = len(self.seen)
        return f"tasks {finished}/{total} done ({self.done} ran, {self.up_to_date} up to date)"

    def render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        now = time.monotonic()
        with self.lock:
            lines = [Text(self.counts(), style="bold")]
            for name, started in sorted(self.running.items(), key=lambda item: item[1]):
                lines.append(Text(f"  {now - started:5.1f} s  {name}"))
            for name, transfer in self.transfers.items():
                speed = transfer.bytes / max(now - transfer.started, 1e-3)
                size = f"{human_size(transfer.bytes)}, {human_size(int(speed))}/s"
                lines.append(Text(f"  {_verb(name)}: {size}"))
        return Group(*lines)

    def slowest(self, count: int = SLOWEST_SHOWN) -> list[tuple[str, float]]:
        return sorted(self.seconds.items(), key=lambda item: -item[1])[:count]

    def summary(self) -> None:
        """After the build: the counts and, on a terminal, the slowest tasks."""
        if self.quiet:
            return
        self.say(self.counts())
        if self.interactive and self.seconds:
            self.say("slowest tasks:")
            for name, seconds in self.slowest():
                self.say(f"  {seconds:6.1f} s  {name}")
