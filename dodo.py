"""doit entry point: `doit` builds every spec in specs/ into out/, incrementally.

`doit arch=arm64` builds them for arm64 instead (out/NAME-arm64-*, as `distrokit build --arch arm64`).

`doit list` shows the task families (component, image, layer, part, output, usage); `doit -n 2 -P thread`
runs independent tasks at once. Set DISTROKIT_CACHE to use another store than ./cache.
A monorepo's own dodo.py does the same with `buildlib.tasks.api.distrokit_tasks` (examples/monorepo).
"""

import contextlib
import os
import sys
from pathlib import Path

from doit import get_var

from buildlib import tasks
from buildlib.fsutil import store_lock
from buildlib.tasks.api import distrokit_tasks

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DISTROKIT_CACHE", ROOT / "cache")).resolve()
ARCH = get_var("arch", "amd64")

DOIT_CONFIG = tasks.doit_config(CACHE, outstream=sys.stdout)
# every family: what `doit` runs and what `doit forget` and `doit clean` without task names act on
DOIT_CONFIG["default_tasks"] = [*tasks.FAMILY_DOCS, "layer"]

# Hold the store's lock for the life of this doit process, as `distrokit build` does for a build:
# another build or a `distrokit cache gc` waits rather than racing this one.
_LOCK = contextlib.ExitStack()
_LOCK.enter_context(store_lock(CACHE))


def task_distrokit():
    """Build every spec in specs/ into out/ (task names as `distrokit build` gives them: no prefix)."""
    specs = sorted((ROOT / "specs").glob("*.yml"))
    yield from distrokit_tasks(
        specs, cache=CACHE, out_dir=ROOT / "out", components=ROOT / "components", prefix="", arch=ARCH
    )
