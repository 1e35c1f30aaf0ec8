"""Issue 6 memory benchmark: a spec whose service carries a 1 GiB layer builds with peak RSS under 200 MB.

The layer holds one 512 MiB file and 512 MiB of 1 MiB files, gzip-compressed as a registry would
serve it; the build decompresses, indexes, merges and recompresses it. Peak RSS is the build
process's own VmHWM.

    .venv/bin/python benchmarks/memory.py [--workdir DIR] [--mib 1024]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.build import Checkout, run_build  # noqa: E402
from buildlib.fsutil import atomic_writer  # noqa: E402
from buildlib.spec.refs import ImageRef  # noqa: E402
from buildlib.store.images import MEDIA_LAYER_GZIP, Store  # noqa: E402

IMAGE = "bench.invalid/huge:1"
SPEC = """\
kernel:
  image: "@pkg:{repo}/components/kernel"
  cmdline: "console=ttyS0"
  tar: none
init:
  - "@pkg:{repo}/components/init"
services:
  - name: huge
    image: {image}
"""


class _Pattern:
    """A file-like source of `size` pseudo-random bytes, produced a MiB at a time."""

    def __init__(self, size: int, seed: int) -> None:
        self.left, self.seed = size, seed

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        block = hashlib.sha256(str(self.seed).encode()).digest() * (n // 32 + 1)
        self.seed += 1
        self.left -= n
        return block[:n]


class _HashingGzip:
    """Writes a gzip member as data streams in, hashing the uncompressed bytes for the diff_id."""

    def __init__(self, out) -> None:  # type: ignore[no-untyped-def]
        self.out, self.digest = out, hashlib.sha256()
        self.compressor = zlib.compressobj(1, zlib.DEFLATED, 31)

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.out.write(self.compressor.compress(data))
        return len(data)

    def close(self) -> None:
        self.out.write(self.compressor.flush())


def make_huge_image(store: Store, mib: int, workdir: Path) -> None:
    blob = workdir / "huge-layer.tar.gz"
    with atomic_writer(blob) as out:
        stream = _HashingGzip(out)
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            _add(archive, "opt/huge/one-big-file", (mib // 2) << 20, 0)
            for number in range(mib // 2):
                _add(archive, f"opt/huge/small/{number:05d}", 1 << 20, number + 1)
        stream.close()
    digest = "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()  # fine: this runs outside the measurement
    size = blob.stat().st_size
    store.put_blob_file(blob, digest)
    diff_id = "sha256:" + stream.digest.hexdigest()
    config = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    store.write_image(ImageRef.parse(IMAGE), config, [(digest, size, MEDIA_LAYER_GZIP)])


def _add(archive: tarfile.TarFile, name: str, size: int, seed: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    archive.addfile(info, _Pattern(size, seed))  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-bench-memory"))
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    checkout = Checkout("this", REPO, workdir)  # its store, spec and output folder in the work folder
    store = Store(checkout.cache)
    if store.lookup(ImageRef.parse(IMAGE)) is None:
        make_huge_image(store, args.mib, workdir)
    checkout.spec.write_text(SPEC.format(repo=REPO, image=IMAGE))
    run_build(checkout)  # warm-up: the component images are built (not measured)
    for stale in ("layers", "segments", "build"):
        shutil.rmtree(checkout.cache / stale, ignore_errors=True)
    seconds, cpu, peak_mb = run_build(checkout)
    initrd = checkout.out / f"{checkout.spec.stem}-initrd.img"
    subprocess.run(["zstd", "-tq", str(initrd)], check=True)
    print(f"{args.mib} MiB layer: build {seconds:.1f} s ({cpu:.1f} s CPU), peak RSS {peak_mb} MB (target < 200 MB)")


if __name__ == "__main__":
    main()
