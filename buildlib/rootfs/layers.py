"""Read each layer once into an index the merge streams from.

A layer's index lists its entries (path, type, mode, owner, times, links, xattrs) with the offset of
each file's data in the layer's uncompressed tar, so the merge copies bytes straight from there and
nothing is ever extracted onto the host: no root, no chown, no mknod. Whiteouts are kept as entries
and applied by the merge, where the lower layers are known.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING

import xxhash

from ..errors import BadInput, BuildError, HostileLayer, StoreError
from ..fsutil import CHUNK, atomic_writer, digest_file, parse_size, xxh_bytes, xxh_file
from ..store.images import Image, Layer, Store
from . import gzipped

if TYPE_CHECKING:
    import tarfile

INDEX_VERSION = 2
MAX_LAYER_SIZE_ENV = "DISTROKIT_MAX_LAYER_SIZE"
DEFAULT_MAX_LAYER_SIZE = "16G"
MAX_INDEXING_THREADS = 4
_TAR_BLOCK = 512
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

# Entry kinds: regular file, directory, symlink, hard link, char and block device, fifo,
# and the two whiteouts (remove a path; hide everything a lower layer has in a directory).
FILE, DIR, SYMLINK, HARDLINK, CHARDEV, BLOCKDEV, FIFO, WHITEOUT, OPAQUE = "fdlhcbpwo"


@functools.cache
def _tar_kinds() -> dict[bytes, str]:
    """Tar's entry types as ours (tarfile loads when a tar is read: a build whose layers are all indexed
    reads none)."""
    import tarfile

    return {
        tarfile.REGTYPE: FILE,
        tarfile.AREGTYPE: FILE,
        tarfile.CONTTYPE: FILE,
        tarfile.DIRTYPE: DIR,
        tarfile.SYMTYPE: SYMLINK,
        tarfile.LNKTYPE: HARDLINK,
        tarfile.CHRTYPE: CHARDEV,
        tarfile.BLKTYPE: BLOCKDEV,
        tarfile.FIFOTYPE: FIFO,
        tarfile.GNUTYPE_SPARSE: FILE,
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
    # a sparse file: (offset in the file, length) of each run of data, stored one after another from
    # `offset`; the holes between them read as zeros
    sparse: tuple[tuple[int, int], ...] = ()
    data: bytes | None = field(default=None, compare=False)

    def read_chunks(self, sources: OpenSources | None = None) -> Iterator[bytes]:
        """The file's bytes, streamed from its layer (through `sources`' open files when given)."""
        if self.data is not None:
            yield self.data
            return
        if not self.size:
            return
        opened = sources if sources is not None else OpenSources()
        try:
            if not self.sparse:
                yield from opened.read(self, self.offset, self.size)
                return
            # the data runs of a sparse file are stored one after another from `offset`
            position, offset = 0, self.offset
            for start, length in self.sparse:
                yield from _zeros(start - position)
                yield from opened.read(self, offset, length)
                position, offset = start + length, offset + length
            yield from _zeros(self.size - position)
        finally:
            if sources is None:
                opened.close()

    def cut_short(self) -> StoreError:
        return StoreError(f"{self.source} ends before the data of {self.path}: remove it and build again")

    def read_bytes(self) -> bytes:
        return b"".join(self.read_chunks())

    def to_json(self) -> dict[str, object]:
        # the fields read one by one: dataclasses.asdict deep-copies each value and was most of the
        # time an index took to write
        record: dict[str, object] = {"path": self.path, "kind": self.kind}
        for name in _STORED_FIELDS:
            value = getattr(self, name)
            if value not in ("", 0, ()):
                record[name] = value
        return record

    @classmethod
    def from_json(cls, record: dict[str, object]) -> Entry:
        values = dict(record)
        for name in ("xattrs", "sparse"):
            values[name] = tuple(tuple(pair) for pair in values.get(name, ()))  # type: ignore[attr-defined]
        return cls(**values)  # type: ignore[arg-type]


class OpenSources:
    """The layer tars an archive's entries are read from, each opened once while the archive is written
    (a 200 MB service of 96 KB files opened and closed its layer tar 2,000 times); a file's data is read
    at its offset (pread), with no seek and no buffer between."""

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def read(self, entry: Entry, offset: int, remaining: int) -> Iterator[bytes]:
        """`remaining` bytes of `entry`'s source from `offset`."""
        fd = self._fds.get(entry.source)
        if fd is None:
            fd = self._fds[entry.source] = os.open(entry.source, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        while remaining:
            chunk = os.pread(fd, min(CHUNK, remaining), offset)
            if not chunk:
                raise entry.cut_short()
            offset += len(chunk)
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        fds, self._fds = list(self._fds.values()), {}
        for fd in fds:
            os.close(fd)


_STORED_FIELDS = tuple(f.name for f in fields(Entry) if f.name not in ("path", "kind", "data"))


def _zeros(count: int) -> Iterator[bytes]:
    while count > 0:
        step = min(count, CHUNK)
        yield bytes(step)
        count -= step


def clean_path(name: str, where: str) -> str:
    """A tar member name as a relative path. A name that climbs out of the root, or that is absolute
    (which a layer never needs: its paths are relative to the root), is hostile: the layer is refused,
    never rewritten."""
    if any(part == ".." for part in name.split("/")):
        raise HostileLayer(f"{where}: entry {name!r} climbs out of the root; refusing this layer")
    if name.startswith("/"):
        raise HostileLayer(f"{where}: entry {name!r} is an absolute path; refusing this layer")
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def max_layer_size() -> int:
    """The most uncompressed bytes one layer may hold: `--max-layer-size` (which sets the environment
    variable for its process) or DISTROKIT_MAX_LAYER_SIZE, 16G by default."""
    text = os.environ.get(MAX_LAYER_SIZE_ENV) or DEFAULT_MAX_LAYER_SIZE
    try:
        return parse_size(text)
    except BadInput as exc:
        raise BadInput(f"{MAX_LAYER_SIZE_ENV}: {exc}") from exc


# indexing -----------------------------------------------------------------------------------
def index_path(store: Store, layer: Layer) -> Path:
    return store.root / "layers" / (layer.digest.split(":", 1)[1] + ".index")


def uncompressed_path(store: Store, layer: Layer) -> Path:
    if layer_compression(layer, "") == "tar":
        return store.blob_path(layer.digest)
    return store.root / "layers" / (layer.diff_id.split(":", 1)[1] + ".tar")


def layer_compression(layer: Layer, where: str) -> str:
    """`tar` or `gzip`, from the layer's media type (OCI's and Docker's names)."""
    media = layer.media_type
    if media.endswith((".tar", "tar.v1")):
        return "tar"
    if media.endswith(("+gzip", ".tar.gzip")):
        return "gzip"
    if "zstd" in media:
        raise BuildError(f"{where or 'layer ' + layer.digest} is zstd-compressed, which distrokit cannot read yet")
    raise BadInput(f"{where or 'layer ' + layer.digest} has the unknown media type {media!r}: it is no image layer")


_indexing: dict[str, threading.Lock] = {}
_indexing_guard = threading.Lock()


def _indexing_lock(index: str) -> threading.Lock:
    with _indexing_guard:
        return _indexing.setdefault(index, threading.Lock())


def ensure_index(store: Store, layer: Layer, image: str = "") -> Path:
    """Index `layer` (of `image`, named in errors) unless an index is already there; return the index path.
    A part indexes the layers it reads when no layer task did yet, so it starts as soon as its own
    images are in the store; two threads that want one layer index it once, the second waiting."""
    path = index_path(store, layer)
    if path.is_file():
        return path
    with _indexing_lock(str(path)):
        return _write_index(store, layer, image, path)


def _write_index(store: Store, layer: Layer, image: str, path: Path) -> Path:
    if not path.is_file():
        where = f"{image} layer {layer.digest}" if image else f"layer {layer.digest}"
        tar_path = _ensure_uncompressed(store, layer, where)
        entries = scan_tar(tar_path, 0, where=where)
        body = b"".join(json.dumps(e.to_json(), separators=(",", ":")).encode() + b"\n" for e in entries)
        header = {
            "version": INDEX_VERSION,
            "digest": layer.digest,
            "tar": str(tar_path),
            "tar_key": _tar_key(tar_path),  # taken as the tar was written or checked, in this process
            "body": xxh_bytes(body),
        }
        with atomic_writer(path) as handle:
            handle.write(json.dumps(header).encode() + b"\n" + body)
    return path


def ensure_indexes(store: Store, layers: Sequence[tuple[Layer, str]]) -> None:
    """Index the layers (each with its image's name) that have no index yet, side by side: inflating,
    hashing and writing free the interpreter, so a part that reads several new layers waits for about
    the longest one, not their sum. The first failure in the given order is raised."""
    missing = list(
        {layer.digest: (layer, image) for layer, image in layers if not index_path(store, layer).is_file()}.values()
    )
    workers = min(len(missing), os.cpu_count() or 1, MAX_INDEXING_THREADS)
    if workers <= 1:
        for layer, image in missing:
            ensure_index(store, layer, image)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="index") as pool:
        for _ in pool.map(lambda pair: ensure_index(store, *pair), missing):
            pass


def index_image(store: Store, image: Image) -> None:
    """Index every layer of `image`: a pull checks its layers (hostile entries, the size limit) at once."""
    for layer in image.layers:
        ensure_index(store, layer, image.ref)


def load_index(store: Store, layer: Layer, image: str = "") -> list[Entry]:
    """The entries of `layer`, from an index that matches its key; a corrupt one is indexed again."""
    path = ensure_index(store, layer, image)
    body = _read_index(path)
    if isinstance(body, str):
        path.unlink(missing_ok=True)
        body = _read_index(ensure_index(store, layer, image))
    problem = body if isinstance(body, str) else _tar_problem(body[0])
    if problem:
        # the tar under the index changed: a decompressed copy is made again from its blob, a blob is
        # pulled again (its image no longer counts as complete once `cache check --repair` removed it)
        path.unlink(missing_ok=True)
        tar_path = uncompressed_path(store, layer)
        if tar_path.parent == index_path(store, layer).parent:
            tar_path.unlink(missing_ok=True)
            return load_index(store, layer, image)
        raise StoreError(
            f"{image or 'layer'} {layer.digest}: {problem}: run `distrokit cache check --repair` and build again"
        )
    return [Entry.from_json(json.loads(line)) for line in body[1].splitlines()]


def check_index(path: Path, with_tar: bool = False) -> str:
    """What is wrong with a layer index (its body against the key in its header; with `with_tar`, also
    the tar it points into), or "" when it is sound."""
    read = _read_index(path)
    if isinstance(read, str):
        return read
    return _tar_problem(read[0]) if with_tar else ""


def _read_index(path: Path) -> tuple[dict[str, object], bytes] | str:
    """An index's header and body, read once and checked against the key in its header; or what is
    wrong with it."""
    try:
        with open(path, "rb") as handle:
            header = json.loads(handle.readline())
            body = handle.read()
    except (OSError, ValueError) as exc:
        return f"unreadable ({exc})"
    if not isinstance(header, dict) or header.get("version") != INDEX_VERSION:
        return "written by another distrokit version"
    if xxh_bytes(body) != header.get("body"):
        return "its entries do not match the key in its header"
    return header, body


def _tar_problem(header: dict[str, object]) -> str:
    if _tar_key(Path(str(header.get("tar")))) != header.get("tar_key"):
        return f"the layer tar {header.get('tar')} is missing or changed since it was indexed"
    return ""


_checked_tars: dict[tuple[str, int, int, int], str] = {}


def _tar_stamp(tar: Path) -> tuple[str, int, int, int] | None:
    try:
        st = tar.stat()
    except OSError:
        return None
    return (str(tar), st.st_ino, st.st_size, st.st_mtime_ns)


def _tar_key(tar: Path) -> str:
    """The content key of a layer tar, hashed once per process while the file stays the same file."""
    stamp = _tar_stamp(tar)
    if stamp is None:
        return ""
    if stamp not in _checked_tars:
        _checked_tars[stamp] = xxh_file(tar)
    return _checked_tars[stamp]


def _remember_tar_key(tar: Path, key: xxhash.xxh3_128) -> None:
    """The key of a tar this process has just read or written whole: a full build's parts then check
    its index against it without reading the tar a second and third time."""
    stamp = _tar_stamp(tar)
    if stamp is not None:
        _checked_tars[stamp] = key.hexdigest()


def _hashed(path: Path) -> str:
    """The sha256 of a file, and its content key remembered (one read for both)."""
    digest, key = hashlib.sha256(), xxhash.xxh3_128()
    digest_file(path, digest, key)
    _remember_tar_key(path, key)
    return "sha256:" + digest.hexdigest()


def _ensure_uncompressed(store: Store, layer: Layer, where: str) -> Path:
    """The layer's tar: the blob itself, or a copy decompressed once and checked against its diff_id."""
    limit = max_layer_size()
    target = uncompressed_path(store, layer)
    if layer_compression(layer, where) == "tar":
        size = target.stat().st_size
        if size > limit:
            raise _too_big(where, limit)
        if layer.diff_id != layer.digest:
            raise HostileLayer(f"{where}: an uncompressed layer whose diff_id {layer.diff_id} is not its digest")
        if _hashed(target) != layer.digest:
            raise StoreError(
                f"{where}: the stored blob does not match its digest: run `distrokit cache check --repair`"
            )
        return target
    # The decompressed copy is written without an fsync: it can be made again from its blob, and it is
    # trusted only as far as it is checked. An index names its key (a changed or torn copy is found and
    # made again), and a copy found without an index is taken only when it still has its diff_id.
    if target.is_file() and _hashed(target) == layer.diff_id:
        return target
    blob = store.blob_path(layer.digest)
    digest, key = hashlib.sha256(), xxhash.xxh3_128()
    written = 0
    needed = gzipped.size_hint(blob)
    with open(blob, "rb") as raw, atomic_writer(target, needed=needed, durable=False) as out:
        for chunk in gzipped.inflated(raw, where):
            written += len(chunk)
            if written > limit:
                raise _too_big(where, limit)
            digest.update(chunk)
            key.update(chunk)
            out.write(chunk)
        if "sha256:" + digest.hexdigest() != layer.diff_id:
            raise StoreError(f"{where} does not decompress to its diff_id {layer.diff_id}; refusing it")
    _remember_tar_key(target, key)
    return target


def _too_big(where: str, limit: int) -> BuildError:
    return BuildError(
        f"{where} holds more than {human_bytes(limit)} uncompressed (the --max-layer-size limit): "
        f"raise the limit with --max-layer-size or {MAX_LAYER_SIZE_ENV} if you trust this image"
    )


def human_bytes(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "B" else f"{count:.4g} {unit}"
        count = count / 1024  # type: ignore[assignment]
    return f"{count} TiB"


def scan_tar(tar_path: Path, start: int, where: str, end: int | None = None) -> list[Entry]:
    """Index the tar that starts at byte `start` of `tar_path` (a nested tar has start > 0) and ends at
    `end` (default: the end of the file)."""
    with open(tar_path, "rb") as handle:
        if end is None:
            end = os.fstat(handle.fileno()).st_size
        handle.seek(start)
        return list(_scan(handle, str(tar_path), where, end))


def _scan(handle: IO[bytes], source: str, where: str, end: int) -> Iterator[Entry]:
    import tarfile

    try:
        with tarfile.open(fileobj=handle, mode="r:") as archive:
            symlinks: set[str] = set()
            for member in archive:
                archive.members = []  # type: ignore[attr-defined]  # keep memory flat on layers with many entries
                entry = _entry(member, source, where, end)
                if entry is not None:
                    _check_not_through(entry, symlinks, where)
                    yield entry
            _check_end(handle, archive.offset, end, where)
    except tarfile.TarError as exc:
        raise HostileLayer(f"{where}: not a readable tar ({exc}); refusing this layer") from exc
    except UnicodeError as exc:
        raise HostileLayer(f"{where}: a tar header that cannot be decoded ({exc}); refusing this layer") from exc


def _check_not_through(entry: Entry, symlinks: set[str], where: str) -> None:
    """An entry under a symlink of the same layer would be written wherever the link points; the merge
    checks the same against lower layers."""
    if symlinks:
        parent = posixpath.dirname(entry.path)
        while parent:
            if parent in symlinks:
                raise HostileLayer(
                    f"{where}: entry {entry.path!r} is written through the symlink {parent!r}; refusing this layer"
                )
            parent = posixpath.dirname(parent)
    if entry.kind == SYMLINK:
        symlinks.add(entry.path)
    else:
        symlinks.discard(entry.path)


def _check_end(handle: IO[bytes], offset: int, end: int, where: str) -> None:
    """tarfile stops quietly at a header it cannot read; a layer must end with zero blocks or at its end."""
    if offset >= end:
        return
    handle.seek(offset)
    block = handle.read(min(_TAR_BLOCK, end - offset))
    if block.strip(b"\0"):
        raise HostileLayer(f"{where}: truncated or corrupt tar at byte {offset}; refusing this layer")


def tar_member_entry(member: tarfile.TarInfo, source: str, where: str) -> Entry | None:
    """One member of a tar read whole (a previous build's output), as an index holds it."""
    return _entry(member, source, where, member.offset_data + member.size)


def _entry(member: tarfile.TarInfo, source: str, where: str, end: int) -> Entry | None:
    path = clean_path(member.name, where)
    if not path:
        return None
    parent, base = posixpath.split(path)
    if base == OPAQUE_MARKER:
        return Entry(parent, OPAQUE)
    if base.startswith(WHITEOUT_PREFIX):
        hidden = base[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise HostileLayer(f"{where}: whiteout {member.name!r} names no file; refusing this layer")
        return Entry(posixpath.join(parent, hidden), WHITEOUT)
    kind = _tar_kinds().get(member.type)
    if kind is None:
        raise HostileLayer(f"{where}: entry {member.name!r} has unsupported tar type {member.type!r}")
    link = ""
    if kind == HARDLINK:
        link = clean_path(member.linkname, where)
        if not link or link == path:
            raise HostileLayer(f"{where}: hard link {member.name!r} points at {member.linkname!r}; refusing this layer")
    elif kind == SYMLINK:
        link = member.linkname
    sparse = _sparse_map(member, where) if kind == FILE else ()
    stored = sum(length for _, length in sparse) if sparse else member.size
    if kind == FILE and member.offset_data + stored > end:
        raise HostileLayer(f"{where}: the data of {member.name!r} runs past the end of the tar (truncated)")
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
        sparse=sparse,
    )


def _sparse_map(member: tarfile.TarInfo, where: str) -> tuple[tuple[int, int], ...]:
    """The data runs of a sparse member, in order, each inside the file: a map that overlaps or runs
    past the file's size is hostile (it would make the reader write where the file is not)."""
    runs: list[tuple[int, int]] = getattr(member, "sparse", None) or []
    kept = tuple((int(start), int(length)) for start, length in runs if length)
    position = 0
    for start, length in kept:
        if start < position or length < 0 or start + length > member.size:
            raise HostileLayer(f"{where}: sparse file {member.name!r} has an impossible map; refusing this layer")
        position = start + length
    return kept


def nested_tar_entries(entry: Entry, where: str) -> list[Entry]:
    """Index a tar stored as a file inside a layer (LinuxKit's kernel.tar), without copying it."""
    if entry.data is not None or entry.sparse:
        raise BuildError(f"{where}: a nested tar must be a plain file of a layer")
    return scan_tar(Path(entry.source), entry.offset, where, end=entry.offset + entry.size)
