"""Initramfs segments and the kernel+initrd output.

Each part of the root becomes one gzip-compressed newc archive; the initrd is their concatenation,
which the kernel unpacks in order. So a changed part recompresses only its own segment.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..fsutil import atomic_writer
from ..layers import Entry
from .cpio import CpioWriter

GZIP_LEVEL = 6


def write_segment(entries: Iterable[Entry], target: Path) -> None:
    """One compressed cpio archive of `entries`, written atomically to `target`."""
    # filename='' and mtime=0 keep the gzip header free of host details.
    with (
        atomic_writer(target) as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as stream,
    ):
        CpioWriter(stream).write_all(entries)  # type: ignore[arg-type]


def join_segments(segments: Sequence[Path], target: Path) -> None:
    with atomic_writer(target) as out:
        for segment in segments:
            with open(segment, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)


def write_entry(entry: Entry, target: Path, mode: int = 0o644) -> None:
    with atomic_writer(target, mode) as out:
        for chunk in entry.read_chunks():
            out.write(chunk)
