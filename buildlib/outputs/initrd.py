"""Initramfs segments and the kernel+initrd output.

Each part of the root becomes one newc archive; the initrd is their concatenation, which the kernel
unpacks in order, so a changed part recompresses only its own segment. A segment is itself a row of
compressed members cut at entry boundaries (the kernel decompresses member after member and needs
each to end between two entries), so both cores can compress one big part at once, as pigz does.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import xxhash

from ..errors import StoreError
from ..fsutil import Writeback, append_file, atomic_writer, write_bytes_atomic
from ..rootfs.layers import Entry
from .compress import Compression, Streamer
from .cpio import CpioWriter

MEMBER_SIZE = 4 << 20  # uncompressed bytes per member: small enough to balance, big enough to compress well
STREAM_AFTER = 32 << 20  # an entry bigger than this is compressed as it streams, never held whole
DEFAULT_COMPRESSION = Compression.ZSTD
JOIN_CHUNK = 1 << 20  # bytes read (and hashed) at once while segments are joined


class Members:
    """A write-only stream compressed in members on a thread pool, written in order."""

    def __init__(self, out: IO[bytes], compression: Compression, workers: int | None = None) -> None:
        self._out = Writeback(out)  # every write also starts the disk writing what came before
        self.key = xxhash.xxh3_128()  # of every byte written: the segment's seal, with no second read
        self.compression = compression
        self.workers = workers or min(4, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="compress")
        self._pending: deque[Future[bytes]] = deque()
        # the writes of the member being gathered, kept as they came: joining them into one buffer
        # copied every byte twice more and touched fresh pages for each member
        self._pieces: list[bytes] = []
        self._size = 0
        self._stream: Streamer | None = None  # a member that streams a big entry

    def write(self, data: bytes) -> int:
        if self._stream is not None:
            self._emit(self._stream.compress(data))
        else:
            self._pieces.append(data if isinstance(data, bytes) else bytes(data))
            self._size += len(data)
            if self._size > STREAM_AFTER:
                self._start_stream()
        return len(data)

    def boundary(self) -> None:
        """The writer finished an entry: a member may end here."""
        if self._stream is not None:
            self._emit(self._stream.flush())
            self._stream = None
        elif self._size >= MEMBER_SIZE:
            self._submit()

    def close(self) -> None:
        try:
            if self._stream is not None:
                self._emit(self._stream.flush())
                self._stream = None
            if self._pieces:
                self._submit()
            self._drain(0)
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _emit(self, data: bytes) -> None:
        self.key.update(data)
        self._out.write(data)

    def _submit(self) -> None:
        self._pending.append(self._pool.submit(self.compression.member, self._pieces))
        self._pieces, self._size = [], 0
        self._drain(self.workers * 2)

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            self._emit(self._pending.popleft().result())

    def _start_stream(self) -> None:
        self._drain(0)
        stream = self._stream = self.compression.streamer()
        self._emit(b"".join([stream.compress(piece) for piece in self._pieces]))
        self._pieces, self._size = [], 0


SEGMENT_SUFFIX = ".cpio.z"  # compressed with zstd, gzip or nothing: its key says which


def segment_path(cache: Path, key: str) -> Path:
    """Segments are stored by content key, so specs and names that share a part share its segment."""
    return cache / "segments" / f"{key}{SEGMENT_SUFFIX}"


KERNEL_POINTER = "kernel.ref"  # build/<spec>/kernel.ref names the spec's kernel in kernels/


def kernel_path(root: Path, key: str) -> Path:
    """Where a kernel binary extracted from a kernel image is stored, once per image and binary."""
    return root / "kernels" / key


def write_segment(
    entries: Iterable[Entry],
    target: Path,
    compression: Compression = DEFAULT_COMPRESSION,
    workers: int | None = None,
) -> None:
    """One compressed cpio archive of `entries`, written atomically to `target`."""
    entries = list(entries)
    most = sum(entry.size + len(entry.path) + 120 for entry in entries)  # uncompressed: an upper bound
    with atomic_writer(target, needed=most) as raw:
        members = Members(raw, compression, workers)
        try:
            CpioWriter(members, on_entry=members.boundary).write_all(entries)  # type: ignore[arg-type]
        finally:
            members.close()
    try:
        write_bytes_atomic(seal_path(target), members.key.hexdigest().encode())
    except BaseException:
        target.unlink(missing_ok=True)  # a segment without its key would be refused as damaged: none at all
        raise


KEY_SUFFIX = ".xxh"  # beside each segment: the key of its bytes, so a flipped bit is found before use


def seal_path(segment: Path) -> Path:
    return segment.with_name(segment.name + KEY_SUFFIX)


def seal_file(cache: str, key: str) -> str:
    """`seal_path(segment_path(cache, key))` as text: a no-change monorepo build asks for thousands
    of them, and building Path objects was most of that check's time."""
    return f"{cache}/segments/{key}{SEGMENT_SUFFIX}{KEY_SUFFIX}"


def segment_problem(segment: Path, copy_to: Writeback | None = None) -> str:
    """What is wrong with a stored segment (missing, no key, bytes that do not match the key) or "".
    With `copy_to`, the bytes are appended there as they are checked, so a join reads them once."""
    try:
        key = seal_path(segment).read_text().strip()
    except FileNotFoundError:
        return "missing" if not segment.is_file() else "has no key to check it against"
    digest = xxhash.xxh3_128()  # what xxh_file computes, the key's hash
    buffer = bytearray(JOIN_CHUNK)
    view = memoryview(buffer)
    try:
        with open(segment, "rb", buffering=0) as handle:
            while count := handle.readinto(buffer):
                digest.update(view[:count])
                if copy_to is not None:
                    copy_to.write(view[:count])
    except FileNotFoundError:
        return "missing"
    return "" if digest.hexdigest() == key else "its bytes do not match its key"


def join_segments(segments: Sequence[Path], target: Path, ucode: Path | None = None) -> None:
    """The initrd: `ucode` (the early microcode archive), then the segments, each checked against its
    key as it is copied (the bytes pass through once), so a bad segment leaves no output behind."""
    heads = [ucode] if ucode else []
    with atomic_writer(target, needed=sum(path.stat().st_size for path in [*heads, *segments])) as out:
        for head in heads:
            append_file(head, out)
        writeback = Writeback(out)
        for segment in segments:
            problem = segment_problem(segment, writeback)
            if problem:
                raise bad_segment(segment, problem)


def bad_segment(segment: Path, problem: str) -> StoreError:
    return StoreError(f"segment {segment} {problem}: run `distrokit cache check --repair` and build again")


def write_entry(entry: Entry, target: Path, mode: int = 0o644) -> None:
    with atomic_writer(target, mode) as out:
        for chunk in entry.read_chunks():
            out.write(chunk)
