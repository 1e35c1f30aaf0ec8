"""The instances this user has started (`distrokit ps`): one small file per state folder, in the user's
cache (`$XDG_CACHE_HOME/distrokit/instances`, else ~/.cache/distrokit/instances).

A state folder can be anywhere, so nothing could find them all by looking; each run with `--state`
writes its folder here, and a listing drops the entries whose folder (or its record) has gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..fsutil import read_json, write_json_atomic
from . import instance


def roster_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "distrokit" / "instances"


def _entry(state: instance.StateDir) -> Path:
    return roster_dir() / f"{hashlib.sha256(str(state.path).encode()).hexdigest()[:16]}.json"


def enlist(state: instance.StateDir) -> None:
    """Name this state folder in the roster (again: the entry is the same file for the same folder)."""
    with contextlib.suppress(OSError):  # a read-only home costs `ps` this instance, not the run
        _entry(state).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(_entry(state), {"state": str(state.path)})


@dataclass(frozen=True)
class Listed:
    """One instance as `ps` shows it."""

    state: Path
    pid: int | None  # None: stopped
    recorded: instance.Recorded


def listed() -> list[Listed]:
    """Every instance of the roster whose folder still holds its record, by folder; the others are pruned."""
    found = []
    for entry in sorted(roster_dir().glob("*.json")):
        state = _state_of(entry)
        if state is None or not state.record.is_file():
            entry.unlink(missing_ok=True)
            continue
        try:
            recorded = instance.recall(state)
        except BadInput:  # an unreadable record: still an instance, with nothing known of it
            recorded = instance.Recorded()
        found.append(Listed(state.path, instance.running_pid(state), recorded))
    return sorted(found, key=lambda item: str(item.state))


def _state_of(entry: Path) -> instance.StateDir | None:
    try:
        return instance.StateDir(Path(str(read_json(entry)["state"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_with_port(port: int, protocol: str) -> Listed | None:
    """The running instance of the roster that publishes host `port`, if one does."""
    for item in listed():
        if item.pid is not None and any(_host_port(text) == (port, protocol) for text in item.recorded.publish):
            return item
    return None


def _host_port(text: str) -> tuple[int, str] | None:
    host, _, rest = text.partition(":")
    protocol = rest.partition("/")[2] or "tcp"
    return (int(host), protocol) if host.isdigit() else None
