"""Where a spec's lock file lives. Apart from `lock` so that a build, which looks for one beside every
spec, loads the lock module (and the recipes it reads) only when a lock file is there."""

from __future__ import annotations

from pathlib import Path

SUFFIX = ".lock"


def path_for(spec: Path) -> Path:
    """Where a spec's lock lives: beside it, with .lock for its suffix."""
    return Path(spec).with_suffix(SUFFIX)
