"""Usage records: what each spec's last successful build used, so `cache gc` and `cache ls` know.

One record per spec build state (the output name and the spec files, see
`tasks.identity.spec_state_id`: two specs of one base name keep two records), at
`uses/<state>.json`, written atomically at the end of a
successful build (under the store lock). It names the spec files, the images (ref and manifest
digest), every blob digest, and the store files the build read or wrote (layer indexes, uncompressed
layer copies, segments), all relative to the store root. Writing a record also sets the
modification time of every blob and file it names to the record's timestamp: a file's mtime is
its last use, which is what `gc --keep` orders by.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ..fsutil import canonical_json, write_hint

USES = "uses"
VERSION = 2  # 2: records carry the state id they are filed under


@dataclass(frozen=True)
class ImageUse:
    """An image a build used, by name and manifest digest."""

    ref: str
    manifest: str


@dataclass(frozen=True)
class UsageRecord:
    """What a spec's last build used in the store, so `cache gc` keeps it."""

    spec: str  # the output name, as people know the spec
    spec_files: tuple[str, ...]
    images: tuple[ImageUse, ...]
    blobs: tuple[str, ...]
    files: tuple[str, ...]
    segments: tuple[str, ...]
    timestamp: float
    state: str = ""  # the spec build's state id: the record's file name and its build/ folder

    @property
    def state_id(self) -> str:
        return self.state or self.spec  # a version 1 record was filed under the name alone

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "spec": self.spec,
            "state": self.state_id,
            "spec_files": list(self.spec_files),
            "images": [[use.ref, use.manifest] for use in self.images],
            "blobs": list(self.blobs),
            "files": list(self.files),
            "segments": list(self.segments),
            "timestamp": self.timestamp,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> UsageRecord:
        return cls(
            spec=str(value["spec"]),
            spec_files=tuple(value["spec_files"]),
            images=tuple(ImageUse(ref, manifest) for ref, manifest in value["images"]),
            blobs=tuple(value["blobs"]),
            files=tuple(value["files"]),
            segments=tuple(value["segments"]),
            timestamp=float(value["timestamp"]),
            state=str(value.get("state", value["spec"])),
        )

    def stale(self) -> bool:
        """True when none of the spec's files exist any more: nothing can build this spec again."""
        return bool(self.spec_files) and not any(Path(path).exists() for path in self.spec_files)


def usage_path(root: Path, state: str) -> Path:
    return root / USES / f"{state}.json"


def write_usage(root: Path, record: UsageRecord, blob_paths: list[Path]) -> None:
    """Write `record` and mark every blob and file it names as used at its timestamp. The record is
    written after the build's outputs, without an fsync of its own (which would wait behind their
    writeback): a power cut may leave the previous record, none, or an empty file, which readers take
    for none, so a `cache gc` right after it may drop what only the next build of the spec needs."""
    write_hint(usage_path(root, record.state_id), canonical_json(record.to_json()))
    _forget_unnamed_record(root, record)
    stamp = (record.timestamp, record.timestamp)
    for path in [*blob_paths, *(root / name for name in record.files)]:
        with contextlib.suppress(FileNotFoundError, PermissionError):  # a stamp is a hint, not a need
            os.utime(path, stamp)


def _forget_unnamed_record(root: Path, record: UsageRecord) -> None:
    """A version 1 record of the same spec files, filed under the name alone, is this spec's older
    record: left there it would keep that build's segments from gc for as long as the spec exists."""
    legacy = usage_path(root, record.spec)
    if legacy == usage_path(root, record.state_id) or not legacy.is_file():
        return
    try:
        old = UsageRecord.from_json(json.loads(legacy.read_bytes()))
    except (ValueError, KeyError, TypeError):
        return
    if old.state == old.spec and set(old.spec_files) == set(record.spec_files):
        legacy.unlink(missing_ok=True)


def read_usages(root: Path) -> Iterator[tuple[Path, UsageRecord]]:
    """Every usage record in the store, with its path."""
    folder = root / USES
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.json")):
        try:
            data = path.read_bytes()
            if not data:  # what a power cut leaves of a record written just before it: no record
                continue
            yield path, UsageRecord.from_json(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"usage record {path} is unreadable ({exc}): delete it and build that spec again") from exc
