"""Python's cyclic collector as distrokit runs it: rarely, because a command keeps what it allocates.

A command keeps nearly everything it allocates (modules, the plan, doit's tasks: 2,600 of them for a
200-spec monorepo, with their checks and keys), so the collector, run after every 700 new objects,
only scans them again and again: about 70 collections took 18 ms of a 0.45 s rebuild, and a tenth of
a no-change monorepo run's CPU. Refcounting still frees everything that is not a cycle.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

RARE_COLLECTIONS = 100_000  # new objects between cyclic collections


@contextlib.contextmanager
def rare_collections(threshold: int = RARE_COLLECTIONS) -> Iterator[None]:
    """The collector run after every `threshold` new objects while the block runs, then as it was."""
    before = gc.get_threshold()
    gc.set_threshold(threshold, *before[1:])
    try:
        yield
    finally:
        if not gc.get_freeze_count():  # (a program that froze objects of its own keeps them frozen)
            # what the command allocated joins the oldest generation at once (two list splices), as what
            # it keeps would anyway: a young collection over up to `threshold` objects the moment the
            # threshold is low again took 6 ms; the next full collection finds what of it is garbage
            gc.freeze()
            gc.unfreeze()
        gc.set_threshold(*before)


def collect_rarely() -> None:
    """The collector run after every RARE_COLLECTIONS new objects for the rest of the process, for a
    caller that has no moment to put it back (doit loading distrokit's tasks in a user's dodo.py). A
    higher threshold is left as it is."""
    threshold, *older = gc.get_threshold()
    if threshold < RARE_COLLECTIONS:
        gc.set_threshold(RARE_COLLECTIONS, *older)
