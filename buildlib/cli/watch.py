"""A build you can watch: what `distrokit build` shows while doit runs the plan.

On a terminal, a live view redrawn a few times a second: tasks done of total, the running ones with
their elapsed time, the bytes and speed of image pulls; when the build ends, the slowest tasks. Not
on a terminal, one plain line per task that ran. Quiet, nothing but warnings.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..tasks import TaskEvent, TaskEventKind
from ..transport import Event, EventKind
from .common import human_size

if TYPE_CHECKING:
    from rich.console import Console

SLOWEST_SHOWN = 5


@dataclass
class _Transfer:
    started: float
    bytes: int = 0


@dataclass
class BuildView:
    """Listens to task events (from the reporter) and transfer events (from pulls) at once."""

    console: Console
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
        return not self.quiet and self.console.is_terminal  # quiet first: asking the console imports rich

    def __enter__(self) -> BuildView:
        if self.interactive:
            from rich.live import Live

            console = getattr(self.console, "_console", self.console)  # rich itself, not the lazy stand-in
            self.live = Live(console=console, refresh_per_second=4, transient=True, get_renderable=self.render)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # listeners -------------------------------------------------------------------------------
    def task(self, event: TaskEvent) -> None:
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
            self.console.print(f"ran {event.task} ({event.seconds:.1f} s)", markup=False)

    def transfer(self, event: Event) -> None:
        if event.kind is EventKind.WARNING:
            self.console.print(f"warning: {event.name}: {event.message}", markup=False)
            return
        with self.lock:
            if event.kind is EventKind.START:
                self.transfers[event.name] = _Transfer(time.monotonic())
            elif event.kind is EventKind.DONE:
                self.transfers.pop(event.name, None)
            elif event.name in self.transfers:
                self.transfers[event.name].bytes = event.bytes
        if not self.interactive and not self.quiet and event.kind is EventKind.RETRY:
            self.console.print(f"pull {event.name}: attempt {event.attempt} failed ({event.message})", markup=False)

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
                lines.append(Text(f"  pull {name}: {size}"))
        return Group(*lines)

    def slowest(self, count: int = SLOWEST_SHOWN) -> list[tuple[str, float]]:
        return sorted(self.seconds.items(), key=lambda item: -item[1])[:count]

    def summary(self) -> None:
        """After the build: the counts and, on a terminal, the slowest tasks."""
        if self.quiet:
            return
        self.console.print(self.counts(), markup=False)
        if self.interactive and self.seconds:
            self.console.print("slowest tasks:", markup=False)
            for name, seconds in self.slowest():
                self.console.print(f"  {seconds:6.1f} s  {name}", markup=False)
