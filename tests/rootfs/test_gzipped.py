"""buildlib.rootfs.gzipped: what `gzip -d` reads is read, in bounded pieces; anything else is refused."""

from __future__ import annotations

import gzip
import io
import os

import pytest

from buildlib.errors import HostileLayer
from buildlib.fsutil import CHUNK
from buildlib.rootfs import gzipped

DATA = os.urandom(300_000) + bytes(2_000_000)


def inflate(blob: bytes) -> list[bytes]:
    return list(gzipped.inflated(io.BytesIO(blob), "test layer"))


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(gzip.compress(DATA, mtime=0), id="one-member"),
        pytest.param(gzip.compress(DATA[:1000], mtime=0) + gzip.compress(DATA[1000:], mtime=0), id="two-members"),
        pytest.param(gzip.compress(DATA, mtime=0) + bytes(5000), id="zero-padding"),
        pytest.param(gzip.compress(b"", mtime=0) + gzip.compress(DATA, mtime=0), id="an-empty-member-first"),
    ],
)
def test_what_gzip_reads_comes_out_whole_in_bounded_pieces(blob: bytes) -> None:
    assert gzip.decompress(blob) == DATA
    pieces = inflate(blob)
    assert b"".join(pieces) == DATA
    assert max(len(piece) for piece in pieces) <= CHUNK


@pytest.mark.parametrize(
    ("blob", "problem"),
    [
        pytest.param(b"", "no gzip data", id="empty"),
        pytest.param(gzip.compress(DATA, mtime=0)[:-30], "ends inside a gzip member", id="truncated"),
        pytest.param(gzip.compress(DATA, mtime=0) + b"junk", "", id="trailing-junk"),
        pytest.param(gzip.compress(DATA, mtime=0)[:-8] + bytes(8), "", id="bad-crc"),
        pytest.param(b"PK\x03\x04" + bytes(100), "", id="not-gzip"),
    ],
)
def test_anything_else_is_a_hostile_layer(blob: bytes, problem: str) -> None:
    with pytest.raises(HostileLayer, match=f"test layer: not readable gzip data.*{problem}"):
        inflate(blob)


def test_the_size_hint_is_the_trailer_length(tmp_path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(gzip.compress(DATA, mtime=0))
    assert gzipped.size_hint(blob) == len(DATA)
    assert gzipped.size_hint(tmp_path / "missing") is None
