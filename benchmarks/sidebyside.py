"""Two revisions measured in one run (issue 29): each checkout with its own Python, folder and store,
their builds alternating, so both see the same moments of a shared machine."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Revision:
    """One checkout under test: its source tree (with its own .venv when it has one), its work folder,
    and the figures of every run, by kind of run (each a tuple: wall seconds, CPU seconds, ...)."""

    label: str
    repo: Path
    work: Path
    runs: dict[str, list[tuple[float, ...]]] = field(default_factory=dict)

    @property
    def python(self) -> str:
        own = self.repo / ".venv" / "bin" / "python"
        return str(own) if own.exists() else sys.executable

    def note(self, what: str, figure: tuple[float, ...]) -> None:
        self.runs.setdefault(what, []).append(figure)

    def column(self, what: str, index: int, pick: Callable[[Iterable[float]], float] = statistics.median) -> float:
        """One figure of the runs of `what` (the median, unless `pick` says otherwise: max for peaks)."""
        return pick(run[index] for run in self.runs[what])


def revisions(repo: Path, work: Path, against: Path | None) -> list[Revision]:
    """This checkout, and the one `--against` names (its folder's name as its label)."""
    found = [Revision("this", repo, work / "this")]
    if against is not None:
        found.append(Revision(against.resolve().name, against.resolve(), work / "against"))
    return found
