"""doit entry point: `doit` builds every spec in specs/ into out/, incrementally.

`doit list` shows the task families (component, image, layer, part, output); `doit -n 2 -P thread`
runs independent tasks at once. Set DISTROKIT_CACHE to use another store than ./cache.
A monorepo's own dodo.py can do the same with `buildlib.tasks.project_plan` or `plan_build`.
"""

import contextlib
import os
import sys
from pathlib import Path

from doit import create_after

from buildlib import tasks
from buildlib.fsutil import store_lock

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DISTROKIT_CACHE", ROOT / "cache")).resolve()

DOIT_CONFIG = tasks.doit_config(CACHE, outstream=sys.stdout)
# every family: what `doit` runs and what `doit forget` and `doit clean` without task names act on
DOIT_CONFIG["default_tasks"] = [*tasks.FAMILY_DOCS, "layer"]

# Hold the store's lock for the life of this doit process, as `distrokit build` does for a build:
# another build or a `distrokit cache gc` waits rather than racing this one.
_LOCK = contextlib.ExitStack()
_LOCK.enter_context(store_lock(CACHE))
PLAN = tasks.project_plan(ROOT / "specs", ROOT / "out", CACHE, ROOT / "components")


def task_distrokit():
    """Build every spec in specs/ into out/."""
    yield from tasks.family_groups()  # so `doit list` describes each family in its own words
    yield from PLAN.tasks


@create_after(executed="image")
def task_layer():
    """Index every layer of the images the specs use, once per digest."""
    yield from PLAN.layer_tasks()
