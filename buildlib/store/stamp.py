"""A build with nothing to do, known without loading doit or reading the spec again.

After a successful `distrokit build`, a stamp records every file the build read or wrote (as doit's
tasks name them, plus the component folders, the store's names, records and blobs it used) with its
size, modification time and inode, and the context the files do not show (the options, $HOME for
`~/` sources, the zlib version, and distrokit's own code). The next build with the same context whose
files all stat the same has nothing to do: doit would find every task up to date, so the command
ends there, in a few milliseconds instead of the tenths of a second that loading doit, the spec parser
and the store takes. Any difference, or any doubt, means the full build runs and decides.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

STAMP_VERSION = 1
_CODE = Path(__file__).resolve().parents[1]  # every module of buildlib


def stamp_path(cache: Path, name: str) -> Path:
    return cache / "build" / name / "stamp.json"


def file_state(path: str) -> list[Any]:
    try:
        st = os.stat(path)
    except OSError:
        return [path, -1, 0, 0]
    return [path, st.st_size, st.st_mtime_ns, st.st_ino]


def _code_files() -> list[str]:
    return sorted(str(path) for path in _CODE.rglob("*.py"))


def code_state() -> list[list[Any]]:
    """distrokit's own code as stats: a change to any module makes every stamp and cached plan stale."""
    return [file_state(path) for path in _code_files()]


def context(options: Mapping[str, Any]) -> dict[str, Any]:
    """What decides a build besides its files."""
    return {
        "version": STAMP_VERSION,
        "options": {key: options[key] for key in sorted(options)},
        "home": os.environ.get("HOME", ""),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "code": code_state(),
    }


def write(cache: Path, name: str, build_context: dict[str, Any], watched: Iterable[str]) -> None:
    from ..fsutil import canonical_json, write_hint  # only a full build writes: the check stays light

    paths = sorted(set(watched))
    # a hint (is_current reads a missing or torn stamp as "build"): no fsync behind the initrd's writeback
    stamp = {"context": build_context, "files": [file_state(p) for p in paths]}
    write_hint(stamp_path(cache, name), canonical_json(stamp))


def forget(cache: Path, name: str) -> None:
    """Before a full build: a build that fails half way must not leave the last stamp standing."""
    stamp_path(cache, name).unlink(missing_ok=True)


def is_current(cache: Path, name: str, build_context: dict[str, Any]) -> bool:
    try:
        stamp = json.loads(stamp_path(cache, name).read_text())
        if stamp["context"] != json.loads(json.dumps(build_context)):
            return False
        return all(file_state(entry[0]) == entry for entry in stamp["files"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False
