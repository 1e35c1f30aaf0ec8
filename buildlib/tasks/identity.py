"""Whose build state is whose: every spec build keeps its task state under its own identity.

Two specs of one base name (`/a/hello.yml` and `/b/hello.yml`, as LinuxKit trees full of `test.yml`
have) must neither rebuild each other nor share a usage record, so a spec's state is named by its
output name AND the spec files it was read from. The files are named relative to the folder the
build runs in (as relative `files` sources are), so a store copied elsewhere, or a project checked out
at another path and built from its own folder, keeps its identity.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..fsutil import xxh_value

STATE_SEPARATOR = "@"
SPEC_FAMILIES = ("part", "output", "usage")  # families whose task names carry a spec's state id (or prefix+family)
PUBLISH_META = "distrokit-publish"  # in the `meta` of the task that puts a spec's new outputs in place


def spec_state_id(name: str, spec_files: Sequence[str], store_root: Path) -> str:
    """`name@<hash of the spec files' paths>`: the folder under build/, the usage record's file, the
    middle of the part and output task names."""
    anchor = _anchor(os.getcwd())  # not the store: a store copied elsewhere (a CI cache) stays warm
    where = [_relative(os.fspath(path), anchor) for path in spec_files]
    return f"{name}{STATE_SEPARATOR}{xxh_value(where)[:10]}"


@functools.lru_cache(maxsize=8)
def _anchor(cwd: str) -> str:
    # once per working folder: a monorepo names hundreds of specs, each resolved against it
    return os.path.realpath(cwd)


def _relative(path: str, anchor: str) -> str:
    # strings, not Paths: this runs for every spec of a monorepo on every `doit` (issue 29)
    if not os.path.exists(path):  # not a file (a spec read from stdin): its name is all there is
        return str(Path(path))
    return os.path.relpath(os.path.realpath(path), anchor)


def public_task_name(task: str) -> str:
    """A task name as people read it: `part:hello@1a2b3c4d5e/files` -> `part:hello/files`."""
    family, colon, rest = task.partition(":")
    if not family.endswith(SPEC_FAMILIES) or STATE_SEPARATOR not in rest:
        return task
    state, slash, part = rest.partition("/")
    return f"{family}:{state.rsplit(STATE_SEPARATOR, 1)[0]}{slash}{part}"


def is_publish(task: Any) -> bool:
    """The task that renames a spec's staged outputs into place: bookkeeping that runs exactly when an
    output task ran, so reports and `explain` leave it out."""
    return bool((getattr(task, "meta", None) or {}).get(PUBLISH_META))
