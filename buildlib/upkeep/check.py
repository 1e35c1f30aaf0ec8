"""`distrokit cache check [--repair]`: every store entry against its key.

- blobs/sha256/<hex>: the sha256 of the bytes is the name.
- layers/<diff_id hex>.tar (decompressed layers): the sha256 of the bytes is the name.
- layers/<digest hex>.index: its entries match the key in its header, and the tar it points into
  still has the key it had when it was indexed.
- segments/<key>.cpio.z: the bytes match the key written beside them (`.xxh`) when they were written.
- images/*.json (which image a build used): readable JSON naming a manifest.

`--repair` removes every bad entry, and what leans on one (the index of a removed tar, the pointers
naming a removed segment), so the next build or pull makes them again from good inputs. A build
itself never uses a bad entry: manifests and configs are checked on every read, indexes and their
tars when loaded, segments as an initrd is joined from them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import sha256_file, store_lock
from ..outputs.initrd import KEY_SUFFIX, SEGMENT_SUFFIX, seal_path, segment_problem
from ..rootfs.layers import check_index


@dataclass(frozen=True)
class BadEntry:
    path: str  # relative to the store
    problem: str


@dataclass(frozen=True)
class CheckReport:
    checked: int
    bad: tuple[BadEntry, ...]
    removed: tuple[str, ...]


def check(cache: Path, repair: bool = False) -> CheckReport:
    """Check every entry of the store; with `repair`, remove the bad ones and what points at them."""
    with store_lock(cache):
        checked = 0
        bad = []
        for path, problem in _entries(cache):
            checked += 1
            if problem:
                bad.append(BadEntry(path.relative_to(cache).as_posix(), problem))
        removed = _repair(cache, bad) if repair else ()
    return CheckReport(checked, tuple(bad), removed)


def _entries(cache: Path) -> Iterator[tuple[Path, str]]:
    for path in _files(cache / "blobs" / "sha256"):
        yield path, _digest_problem(path, "sha256:" + path.name)
    for path in _files(cache / "layers"):
        if path.name.endswith(".tar"):
            yield path, _digest_problem(path, "sha256:" + path.name.removesuffix(".tar"))
        elif path.name.endswith(".index"):
            yield path, check_index(path, with_tar=True)
    for path in _files(cache / "segments"):
        if path.name.endswith(SEGMENT_SUFFIX):
            yield path, segment_problem(path)
    for path in _files(cache / "images"):
        yield path, _record_problem(path)


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _digest_problem(path: Path, digest: str) -> str:
    try:
        actual = sha256_file(path)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return "" if actual == digest else f"its bytes hash to {actual}, not to its name"


def _record_problem(path: Path) -> str:
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return "not readable JSON"
    return "" if isinstance(record, dict) and isinstance(record.get("manifest"), str) else "names no manifest"


def _repair(cache: Path, bad: Sequence[BadEntry]) -> tuple[str, ...]:
    doomed = [cache / entry.path for entry in bad]
    for path in list(doomed):
        if path.name.endswith(SEGMENT_SUFFIX):
            doomed.append(seal_path(path))
            doomed += _pointers_to(cache, path)
        else:
            doomed += _indexes_of(cache, path)  # an index into a removed tar (or uncompressed blob)
    removed = []
    for path in dict.fromkeys(doomed):
        if path.exists():
            path.unlink()
            removed.append(path.relative_to(cache).as_posix())
    return tuple(removed)


def _pointers_to(cache: Path, segment: Path) -> list[Path]:
    key = segment.name.removesuffix(SEGMENT_SUFFIX)
    return [p for p in sorted((cache / "build").glob("*/*.segment")) if p.read_text().strip() == key]


def _indexes_of(cache: Path, tar: Path) -> list[Path]:
    found = []
    for index in sorted((cache / "layers").glob("*.index")):
        try:
            with open(index, "rb") as handle:
                header = json.loads(handle.readline())
        except (OSError, ValueError):
            continue
        if isinstance(header, dict) and Path(str(header.get("tar"))).resolve() == tar.resolve():
            found.append(index)
    return found


__all__ = ["KEY_SUFFIX", "BadEntry", "CheckReport", "check"]
