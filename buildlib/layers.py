"""Read each layer once into an index the merge streams from.

A layer's index lists its entries (path, type, mode, owner, times, links, xattrs) with the offset of
each file's data in the layer's uncompressed tar, so the merge copies bytes straight from there and
nothing is ever extracted onto the host: no root, no chown, no mknod. Whiteouts are kept as entries
and applied by the merge, where the lower layers are known.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

from .errors import BuildError, HostileLayer, StoreError
from .fsutil import CHUNK, atomic_writer
from .images import Layer, Store

INDEX_VERSION = 1
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

# Entry kinds: regular file, directory, symlink, hard link, char and block device, fifo,
# and the two whiteouts (remove a path; hide everything a lower layer has in a directory).
FILE, DIR, SYMLINK, HARDLINK, CHARDEV, BLOCKDEV, FIFO, WHITEOUT, OPAQUE = "fdlhcbpwo"

_TAR_KINDS = {
    tarfile.REGTYPE: FILE,
    tarfile.AREGTYPE: FILE,
    tarfile.CONTTYPE: FILE,
    tarfile.DIRTYPE: DIR,
    tarfile.SYMTYPE: SYMLINK,
    tarfile.LNKTYPE: HARDLINK,
    tarfile.CHRTYPE: CHARDEV,
    tarfile.BLKTYPE: BLOCKDEV,
    tarfile.FIFOTYPE: FIFO,
}


@dataclass(frozen=True)
class Entry:
    """One file-system object of a layer, or of a generated part of the root."""

    path: str
    kind: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    size: int = 0
    source: str = ""  # the file holding the data; empty when `data` holds it
    offset: int = 0
    link: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, str], ...] = ()
    data: bytes | None = field(default=None, compare=False)

    def read_chunks(self) -> Iterator[bytes]:
        """The file's bytes, streamed from its layer."""
        if self.data is not None:
            yield self.data
            return
        if not self.size:
            return
        with open(self.source, "rb") as handle:
            handle.seek(self.offset)
            remaining = self.size
            while remaining:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    raise StoreError(f"{self.source} ends before the data of {self.path}: remove it and build again")
                remaining -= len(chunk)
                yield chunk

    def read_bytes(self) -> bytes:
        return b"".join(self.read_chunks())

    def to_json(self) -> dict[str, object]:
        record = {k: v for k, v in asdict(self).items() if k != "data" and v not in ("", 0, ())}
        record["path"], record["kind"] = self.path, self.kind
        return record

    @classmethod
    def from_json(cls, record: dict[str, object]) -> Entry:
        values = dict(record)
        values["xattrs"] = tuple(tuple(pair) for pair in values.get("xattrs", ()))  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]


def clean_path(name: str, where: str) -> str:
    """A tar member name as a relative path; a path that climbs out of the root is hostile."""
    path = posixpath.normpath("/" + name).lstrip("/")
    if any(part == ".." for part in name.split("/")):
        raise HostileLayer(f"{where}: entry {name!r} climbs out of the root; refusing this layer")
    return "" if path == "." else path


# indexing -----------------------------------------------------------------------------------
def index_path(store: Store, layer: Layer) -> Path:
    return store.root / "layers" / (layer.digest.split(":", 1)[1] + ".index")


def uncompressed_path(store: Store, layer: Layer) -> Path:
    if layer.media_type.endswith(".tar") or layer.media_type.endswith("tar.v1"):
        return store.blob_path(layer.digest)
    return store.root / "layers" / (layer.diff_id.split(":", 1)[1] + ".tar")


def ensure_index(store: Store, layer: Layer) -> Path:
    """Index `layer` unless an index is already there; return the index path."""
    path = index_path(store, layer)
    if not path.is_file():
        tar_path = _ensure_uncompressed(store, layer)
        entries = scan_tar(tar_path, 0, where=f"layer {layer.digest}")
        with atomic_writer(path) as handle:
            header = {"version": INDEX_VERSION, "digest": layer.digest, "tar": str(tar_path)}
            handle.write(json.dumps(header).encode() + b"\n")
            for entry in entries:
                handle.write(json.dumps(entry.to_json(), separators=(",", ":")).encode() + b"\n")
    return path


def load_index(store: Store, layer: Layer) -> list[Entry]:
    path = ensure_index(store, layer)
    with open(path, "rb") as handle:
        header = json.loads(handle.readline())
        if header.get("version") != INDEX_VERSION:
            raise StoreError(f"{path} was written by another distrokit version: run `distrokit cache rm` on it")
        return [Entry.from_json(json.loads(line)) for line in handle]


def _ensure_uncompressed(store: Store, layer: Layer) -> Path:
    target = uncompressed_path(store, layer)
    if target.is_file():
        return target
    blob = store.blob_path(layer.digest)
    if "zstd" in layer.media_type:
        raise BuildError(f"layer {layer.digest} is zstd-compressed, which distrokit cannot read yet")
    digest = hashlib.sha256()
    with open(blob, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream, atomic_writer(target) as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
        if "sha256:" + digest.hexdigest() != layer.diff_id:
            raise StoreError(f"layer {layer.digest} does not decompress to its diff_id {layer.diff_id}")
    return target


def scan_tar(tar_path: Path, start: int, where: str) -> list[Entry]:
    """Index the tar that starts at byte `start` of `tar_path` (a nested tar has start > 0)."""
    with open(tar_path, "rb") as handle:
        handle.seek(start)
        return list(_scan(handle, str(tar_path), where))


def _scan(handle: IO[bytes], source: str, where: str) -> Iterator[Entry]:
    try:
        with tarfile.open(fileobj=handle, mode="r:") as archive:
            for member in archive:
                archive.members = []  # type: ignore[attr-defined]  # keep memory flat on layers with many entries
                entry = _entry(member, source, where)
                if entry is not None:
                    yield entry
    except tarfile.TarError as exc:
        raise BuildError(f"{where}: not a readable tar ({exc})") from exc


def _entry(member: tarfile.TarInfo, source: str, where: str) -> Entry | None:
    path = clean_path(member.name, where)
    if not path:
        return None
    parent, base = posixpath.split(path)
    if base == OPAQUE_MARKER:
        return Entry(parent, OPAQUE)
    if base.startswith(WHITEOUT_PREFIX):
        return Entry(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]), WHITEOUT)
    kind = _TAR_KINDS.get(member.type)
    if kind is None:
        raise HostileLayer(f"{where}: entry {member.name!r} has unsupported tar type {member.type!r}")
    link = ""
    if kind == HARDLINK:
        link = clean_path(member.linkname, where)
    elif kind == SYMLINK:
        link = member.linkname
    xattrs = tuple(
        sorted(
            (key[len("SCHILY.xattr.") :], value)
            for key, value in member.pax_headers.items()
            if key.startswith("SCHILY.xattr.")
        )
    )
    return Entry(
        path=path,
        kind=kind,
        mode=member.mode & 0o7777,
        uid=member.uid,
        gid=member.gid,
        mtime=int(member.mtime),
        size=member.size if kind == FILE else 0,
        source=source if kind == FILE else "",
        offset=member.offset_data if kind == FILE else 0,
        link=link,
        devmajor=member.devmajor if kind in (CHARDEV, BLOCKDEV) else 0,
        devminor=member.devminor if kind in (CHARDEV, BLOCKDEV) else 0,
        xattrs=xattrs,
    )


def nested_tar_entries(entry: Entry, where: str) -> list[Entry]:
    """Index a tar stored as a file inside a layer (LinuxKit's kernel.tar), without copying it."""
    if entry.data is not None:
        raise BuildError(f"{where}: a nested tar must come from a layer")
    return scan_tar(Path(entry.source), entry.offset, where)
