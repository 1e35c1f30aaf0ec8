"""An output set replaced all at once: the files a build writes go to a staging folder first, and are
renamed into the output folder only after every output task of the build succeeded.

A failed or killed build leaves the output folder as it was, byte for byte: a reader never finds a new
kernel beside the previous build's initrd. The staging folder lies in the store (beside the build's
state) when the store and the output folder share a file system, so even a killed build leaves nothing
behind in the output folder; otherwise it is a hidden folder in the output folder, which the next build
(or the failed one, when it can) removes. Publishing is a rename, never a copy.

Each file written is recorded with its size, modification time and inode (cheap to compare) and its
content key (the xxh3 of its bytes, in one or more pieces), so an output edited, truncated or replaced
since it was written is found by a stat and confirmed by its bytes, and the task writes it again.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from ..fsutil import CHUNK, canonical_json, copy_file_atomic, read_json, replace_releasing, write_hint, xxh_file

STAGED_IN_STORE = "staged"  # under the build's state folder: one folder per run
Piece = tuple[int, str]  # a run of bytes: its length and the xxh3-128 of those bytes


@dataclass(frozen=True, eq=False)
class OutputSet:
    """The files of one output name in `out_dir`, staged per run (`run`) and published together."""

    out_dir: Path
    name: str
    state_dir: Path  # the build's state folder in the store
    run: str

    @functools.cached_property
    def staging(self) -> Path:
        """This run's staging folder: in the store when a rename reaches the output folder from there."""
        if _same_device(self.state_dir, self.out_dir):
            return self.state_dir / STAGED_IN_STORE / self.run
        return self.out_dir / f".{self.name}.staged-{self.run}"

    def prefix(self) -> Path:
        """What the writers take as their output prefix: NAME in the staging folder (made here: some
        writers make their scratch folders beside their output)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / self.name

    def final(self, staged: Path) -> Path:
        return self.out_dir / staged.name

    def pending(self) -> bool:
        """Whether this run staged anything (else there is nothing to publish)."""
        return self.staging.is_dir() and any(self.staging.iterdir())

    def publish(self) -> None:
        """Rename every staged file into the output folder, back to back; then drop older runs' leftovers."""
        if self.staging.is_dir():
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for staged in sorted(self.staging.iterdir()):
                _move_into_place(staged, self.final(staged))
            self.staging.rmdir()
        self._drop_stale()

    def discard(self) -> None:
        """After a failed build: remove what this run staged, so the output folder stays as it was."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def _drop_stale(self) -> None:
        """Staging folders of runs that were killed or failed before they could clean up."""
        stale = list((self.state_dir / STAGED_IN_STORE).glob("*"))
        stale += list(self.out_dir.glob(f".{self.name}.staged-*"))
        for folder in stale:
            if folder != self.staging:
                shutil.rmtree(folder, ignore_errors=True)


def _same_device(store_side: Path, out_dir: Path) -> bool:
    """Whether both folders are on one file system (the output folder may not exist yet: its nearest
    existing ancestor is where it will be made)."""
    existing = out_dir.resolve()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    store_side.mkdir(parents=True, exist_ok=True)
    return store_side.stat().st_dev == existing.stat().st_dev


def _move_into_place(staged: Path, target: Path) -> None:
    """A rename (a big file replaced is freed on a thread); a copy only where a mount point between
    them refuses the rename."""
    try:
        replace_releasing(staged, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        copy_file_atomic(staged, target, mode=staged.stat().st_mode & 0o7777)
        staged.unlink()


# what each task wrote ----------------------------------------------------------------------------------
def _stat(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def record_written(record: Path, written: Mapping[Path, Path], pieces: Mapping[Path, Sequence[Piece]]) -> None:
    """Record each file as written: {final path: its stat in staging (a rename keeps size, mtime and
    inode) and the content key of its bytes}. `pieces` gives keys already known (the initrd's segments)."""
    entries = {}
    for final, staged in written.items():
        known = pieces.get(final)
        entries[str(final)] = {"stat": _stat(staged), "pieces": [list(p) for p in known or whole_file(staged)]}
    # a hint (without it the task writes its files again), written after them: no fsync of its own,
    # which would wait behind their writeback
    write_hint(record, canonical_json(entries))


def whole_file(path: Path) -> list[Piece]:
    return [(path.stat().st_size, xxh_file(path))]


@dataclass(frozen=True)
class WrittenOutputs:
    """doit's uptodate check of an output task: every file it writes is in the output folder with the
    bytes the task wrote (a stat that matches the record is enough; else its bytes are compared)."""

    record: Path
    finals: tuple[Path, ...]

    def __call__(self) -> bool:
        return self.problem() is None

    def problem(self) -> str | None:
        """Why the task must write its files again (for `explain`), or None."""
        try:
            saved: dict[str, Any] = read_json(self.record)
        except (OSError, ValueError):
            return "no record of the files it wrote"
        for final in self.finals:
            entry = saved.get(str(final))
            now = _stat(final)
            if now is None:
                return f"missing output: {final}"
            if not isinstance(entry, dict) or "pieces" not in entry:
                return f"no record of the bytes written to {final}"
            if entry.get("stat") == now:
                continue
            if not _same_bytes(final, [(int(n), str(key)) for n, key in entry["pieces"]]):
                return f"output changed since it was written: {final}"
            entry["stat"] = now  # the same bytes under a new stat (touched, copied back): next time a stat will do
            with contextlib.suppress(OSError):
                write_hint(self.record, canonical_json(saved))
        return None


def _same_bytes(path: Path, pieces: Sequence[Piece]) -> bool:
    """Whether the file is exactly the recorded pieces, read once."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size != sum(length for length, _ in pieces):
                return False
            for length, key in pieces:
                digest = xxhash.xxh3_128()
                left = length
                while left > 0:
                    chunk = handle.read(min(CHUNK, left))
                    if not chunk:
                        return False
                    digest.update(chunk)
                    left -= len(chunk)
                if digest.hexdigest() != key:
                    return False
    except OSError:
        return False
    return True
