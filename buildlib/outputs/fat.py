"""FAT file systems inside image files, made with mkfs.vfat and filled with mtools: no mount, no root.

mkfs.vfat runs with --invariant and a serial derived from the content; mtools stamps SOURCE_DATE_EPOCH
(in UTC, see tools.tool_env), so the same files give the same bytes.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from .partition import SECTOR
from .tools import run_tool

FAT_OVERHEAD = 1 << 20  # boot sectors, two FATs and root directory of a small FAT, roughly
CLUSTER_SLACK = 4096  # a file's last cluster is partly empty


def fat_bytes_needed(sizes: Sequence[int]) -> int:
    """A FAT size that holds files of these sizes (FATs take about 1% of the data for FAT16/32)."""
    data = sum(-(-size // CLUSTER_SLACK) * CLUSTER_SLACK for size in sizes)
    return data + data // 64 + FAT_OVERHEAD


def make_fat(
    image: Path,
    offset: int,
    size: int,
    files: Sequence[tuple[str, Path]],
    *,
    label: str,
    serial: str,
    epoch: int,
) -> str:
    """Format `size` bytes of `image` at `offset` as FAT and copy `files` (path in the FAT, host file)
    into it; return the FAT type mkfs.vfat chose ("FAT12", "FAT16" or "FAT32")."""
    args = ["mkfs.vfat", "--invariant", "-i", serial, "-n", label]
    if offset:
        args += ["--offset", str(offset // SECTOR)]
    run_tool([*args, str(image), str(size // 1024)], epoch)
    target = f"{image}@@{offset}"
    made: set[str] = set()
    for path, _ in files:
        parent = posixpath.dirname(path)
        chain = []
        while parent and parent not in made:
            chain.append(parent)
            parent = posixpath.dirname(parent)
        for folder in reversed(chain):
            run_tool(["mmd", "-i", target, f"::/{folder}"], epoch)
            made.add(folder)
    for path, source in files:
        run_tool(["mcopy", "-i", target, str(source), f"::/{path}"], epoch)
    return fat_type(image, offset)


def fat_type(image: Path, offset: int) -> str:
    with open(image, "rb") as handle:
        handle.seek(offset)
        boot = handle.read(SECTOR)
    return "FAT32" if boot[82:87] == b"FAT32" else boot[54:59].decode(errors="replace")
