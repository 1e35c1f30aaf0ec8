"""How a task knows it is up to date: content, never timestamps alone.

`XXHashChecker` decides whether a file dependency changed by its xxhash, memoised on
(path, inode, size, mtime_ns) so a big blob is hashed once per process. A file's mtime only moves
once per clock tick of its file system, so a file rewritten with the same size within a tick of the
state saved about it looks unchanged by (mtime, size): like git's "racily clean" entries, such a
file is hashed again rather than trusted. `InputKeys` is an uptodate
check over a task's named input keys (spec fragments, digests, tool versions); it saves the keys
with the task's result, so `explain` can say which input changed, old key against new.
"""

from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Any

from doit.dependency import FileChangedChecker

from ..epoch import FIXED_EPOCH, build_epoch
from ..fsutil import xxh_file, xxh_value

SAVED_KEYS = "_distrokit_inputs"
# Bump when a change to distrokit changes the bytes a task writes for the same inputs.
BUILDER_VERSION = "5"  # 4: the tar's LINUXKIT.* headers; 5: a read-only volume has no tmp/
# A file whose mtime is this close to the moment its state was taken (or to now) may have changed
# again within the same timestamp tick: its (mtime, size) proves nothing, its content decides.
RACY_NS = 2_000_000_000


def tool_versions() -> dict[str, str]:
    """Versions of the tools whose output bytes matter (zlib's deflate differs between versions)."""
    return {"builder": BUILDER_VERSION, "zlib": zlib.ZLIB_RUNTIME_VERSION}


def _racy(mtime_ns: int, when_ns: int) -> bool:
    return when_ns - mtime_ns < RACY_NS


def epoch_key() -> dict[str, str]:
    """The build epoch, for the tasks that stamp generated entries with it; empty without SOURCE_DATE_EPOCH,
    so the keys of builds that never set it stay as they were."""
    epoch = build_epoch()
    return {"epoch": str(epoch)} if epoch != FIXED_EPOCH else {}


class XXHashChecker(FileChangedChecker):  # type: ignore[misc]
    _memo: dict[tuple[str, int, int, int], str] = {}

    def _key(self, path: str) -> str:
        st = os.stat(path)
        memo_key = (path, st.st_ino, st.st_size, st.st_mtime_ns)
        digest = None if _racy(st.st_mtime_ns, time.time_ns()) else self._memo.get(memo_key)
        if digest is None:
            digest = xxh_file(Path(path))
            self._memo[memo_key] = digest
        return digest

    def check_modified(self, file_path: str, file_stat: os.stat_result, state: Any) -> bool:
        mtime_ns, size, digest = state[:3]
        saved_ns = state[3] if len(state) > 3 else None  # states saved before racy checks had no time
        if file_stat.st_size != size:
            return True
        if file_stat.st_mtime_ns == mtime_ns and (saved_ns is None or not _racy(mtime_ns, saved_ns)):
            return False
        return bool(self._key(file_path) != digest)

    def get_state(self, dep: str, current_state: Any) -> Any:
        st = os.stat(dep)
        if current_state and tuple(current_state[:2]) == (st.st_mtime_ns, st.st_size):
            saved_ns = current_state[3] if len(current_state) > 3 else None
            if saved_ns is None or not _racy(st.st_mtime_ns, saved_ns) or _racy(st.st_mtime_ns, time.time_ns()):
                return None  # nothing new to save (a racy state stays racy until the file is old enough)
        now = time.time_ns()
        return st.st_mtime_ns, st.st_size, self._key(dep), now


class InputKeys:
    """doit uptodate check: true when every named input key equals the one saved at the last success."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.keys = {name: value if isinstance(value, str) else xxh_value(value) for name, value in inputs.items()}

    def configure_task(self, task: Any) -> None:
        task.value_savers.append(lambda: {SAVED_KEYS: self.keys})

    def __call__(self, task: Any, values: dict[str, Any]) -> bool:
        return values.get(SAVED_KEYS) == self.keys

    def changes(self, values: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
        """(input, old key, new key) for every input that differs from the saved ones."""
        saved: dict[str, str] = values.get(SAVED_KEYS) or {}
        names = sorted(set(saved) | set(self.keys))
        return [(n, saved.get(n), self.keys.get(n)) for n in names if saved.get(n) != self.keys.get(n)]

    def __repr__(self) -> str:
        return f"InputKeys({sorted(self.keys)})"
