"""Small real layers for tests: tar bytes built with tarfile, stored as blobs of a real store."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass

from buildlib.store.images import MEDIA_LAYER_GZIP, MEDIA_LAYER_TAR, Layer, Store


@dataclass(frozen=True)
class M:
    """One tar member: kind is f(ile), d(ir), l (symlink), h(ard link), c(har dev), p (fifo)."""

    name: str
    kind: str = "f"
    data: bytes = b""
    mode: int = 0o644
    link: str = ""
    uid: int = 0
    gid: int = 0
    xattrs: tuple[tuple[str, str], ...] = ()


_TYPES = {
    "f": tarfile.REGTYPE,
    "d": tarfile.DIRTYPE,
    "l": tarfile.SYMTYPE,
    "h": tarfile.LNKTYPE,
    "c": tarfile.CHRTYPE,
    "p": tarfile.FIFOTYPE,
}


def tar_bytes(members: list[M], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    """A tar of `members`; a name may hold surrogate escapes (bytes that are not UTF-8)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt, errors="surrogateescape") as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = _TYPES[member.kind]
            info.mode, info.uid, info.gid, info.mtime = member.mode, member.uid, member.gid, 1000
            info.linkname = member.link
            if member.kind == "c":
                info.devmajor, info.devminor = 5, 1
            if member.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in member.xattrs}
            info.size = len(member.data) if member.kind == "f" else 0
            archive.addfile(info, io.BytesIO(member.data) if member.kind == "f" else None)
    return buffer.getvalue()


def store_layer(store: Store, members: list[M], compress: bool = False, fmt: int = tarfile.PAX_FORMAT) -> Layer:
    return store_tar(store, tar_bytes(members, fmt), compress)


def store_tar(store: Store, raw: bytes, compress: bool = False) -> Layer:
    """Any bytes stored as a layer whose diff_id is their digest (a hostile test's own crafted tar)."""
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    if compress:
        blob = gzip.compress(raw, mtime=0)
        digest = store.put_blob(blob)
        return Layer(digest, MEDIA_LAYER_GZIP, len(blob), diff_id)
    digest = store.put_blob(raw)
    return Layer(digest, MEDIA_LAYER_TAR, len(raw), diff_id)
