"""buildlib.fsutil: the write-out head start keeps every byte and never gets in a stream's way."""

from __future__ import annotations

import io
import os
from pathlib import Path

from buildlib.fsutil import Writeback, atomic_writer


def test_writeback_started_along_the_way_keeps_every_byte(tmp_path: Path) -> None:
    chunks = [os.urandom(300_000) for _ in range(12)]
    target = tmp_path / "out.img"
    with atomic_writer(target) as out:
        writeback = Writeback(out, every=1 << 20)
        for chunk in chunks:
            out.write(chunk)
            writeback.wrote()
        assert writeback.started is not None and writeback.started > 0  # started at least once before the end
    assert target.read_bytes() == b"".join(chunks)


def test_writeback_on_a_stream_without_a_position_does_nothing() -> None:
    class Pipe(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            return len(data)

        def tell(self) -> int:
            raise OSError("illegal seek")

    pipe = io.BufferedWriter(Pipe())
    writeback = Writeback(pipe, every=1)
    pipe.write(b"x" * 10)
    writeback.wrote()
    assert writeback.started is None  # nothing to start on a pipe
