"""doit entry point: `doit` builds every spec in specs/ into out/, incrementally.

`doit list` shows the task families (component, image, part, output); `doit -n 2 -P thread` runs
independent tasks at once. Set DISTROKIT_CACHE to use another store than ./cache.
"""

import os
import sys
from pathlib import Path

from buildlib import tasks

ROOT = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DISTROKIT_CACHE", ROOT / "cache")).resolve()

DOIT_CONFIG = tasks.doit_config(CACHE, outstream=sys.stdout)


def task_distrokit():
    """Build every spec in specs/ into out/."""
    yield from tasks.project_tasks(ROOT / "specs", ROOT / "out", CACHE, ROOT / "components")
