"""Issue 6 benchmark: full build, no-change rebuild and one-service rebuild, against gzip -6.

On a spec with the kernel (Debian's cloud kernel, all its modules), init and five services, one of
them carrying ~200 MB of layers, with every image already in the store. Each build is a real
`distrokit build` process; its wall time and peak RSS are measured side by side with a single-threaded
`gzip -6` of the uncompressed initrd in the same run.

    .venv/bin/python benchmarks/build.py [--workdir DIR] [--mb 200] [--runs 5]

No-change and one-service times are medians of --runs builds (each one-service build changes the
service's command again), so one noisy moment of a shared machine does not decide them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from buildlib.outputs.compress import decompress  # noqa: E402
from buildlib.spec.refs import ImageRef  # noqa: E402
from buildlib.store.images import MEDIA_LAYER_GZIP, Store  # noqa: E402

BIG_IMAGE = "bench.invalid/big:1"
SPEC = """\
kernel:
  image: "@pkg:{repo}/components/kernel-full"
  cmdline: "console=ttyS0"
init:
  - "@pkg:{repo}/components/init"
services:
  - name: big
    image: {big}
    command: ["/bin/true"]
{small}
"""
SMALL = """\
  - name: small{n}
    image: "@pkg:{repo}/components/init"
    command: ["/bin/echo", "service {n} {word}"]
"""


def spec_text(word: str) -> str:
    small = "".join(SMALL.format(n=n, repo=REPO, word=word if n == 1 else "steady") for n in range(1, 5))
    return SPEC.format(repo=REPO, big=BIG_IMAGE, small=small)


def file_data(rng: random.Random, size: int) -> bytes:
    """Half noise, half text: compresses about as well as binaries and libraries do."""
    text = b"distrokit builds minimal bootable systems from declarative specs. " * (size // 130 + 1)
    return rng.randbytes(size // 2) + text[: size - size // 2]


def make_big_image(store: Store, total_mb: int, layers: int = 4, file_kb: int = 96) -> None:
    rng = random.Random(6)
    per_layer = total_mb * (1 << 20) // layers
    entries, diff_ids = [], []
    for number in range(layers):
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
            written = 0
            index = 0
            while written < per_layer:
                data = file_data(rng, file_kb << 10)
                info = tarfile.TarInfo(f"opt/big/layer{number}/file{index:05d}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                archive.addfile(info, io.BytesIO(data))
                written += len(data)
                index += 1
        tar = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        blob = gzip.compress(tar, compresslevel=1, mtime=0)
        entries.append((store.put_blob(blob), len(blob), MEDIA_LAYER_GZIP))
    config = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    store.write_image(ImageRef.parse(BIG_IMAGE), config, entries)


# The build reports its own peak RSS (VmHWM) as it exits: a child's ru_maxrss would also count the
# memory of this benchmark process, which fork copies into the child before exec.
_REPORT_PEAK = (
    "import atexit, sys\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    sys.stderr.write('peak-kb ' + status.split('VmHWM:')[1].split()[0] + '\\n')\n"
    "atexit.register(peak)\n"
    "from buildlib.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


# As installed, distrokit runs from compiled bytecode; the warm-up build writes it even where the
# environment says not to (PYTHONDONTWRITEBYTECODE), so no measured build pays for compiling.
_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def run_build(cache: Path, spec: Path, out: Path, *extra: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one `distrokit build` process."""
    args = ["--cache", str(cache), "build", str(spec), "--dir", str(out), "-q", *extra]
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_PEAK, *args], cwd=REPO, capture_output=True, text=True, env=_ENV
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"build failed: {done.stderr}")
    peak_kb = int(done.stderr.rsplit("peak-kb ", 1)[1].split()[0])
    return seconds, peak_kb // 1024


def median_build(
    cache: Path, spec: Path, out: Path, extra: tuple[str, ...], words: list[str | None]
) -> tuple[float, int]:
    """The median wall time and the largest peak RSS of one build per word (None: the spec as it is)."""
    times, peaks = [], []
    for word in words:
        if word is not None:
            spec.write_text(spec_text(word))
        seconds, peak = run_build(cache, spec, out, *extra)
        times.append(seconds)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def gzip6_seconds(initrd: Path, workdir: Path) -> tuple[float, int]:
    plain = workdir / "initrd.cpio"
    plain.write_bytes(decompress(initrd.read_bytes()))
    started = time.perf_counter()
    with open(plain, "rb") as source:
        subprocess.run(["gzip", "-6", "-c"], stdin=source, stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    size = plain.stat().st_size
    plain.unlink()
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-bench"))
    parser.add_argument("--mb", type=int, default=200, help="size of the big service's layers")
    parser.add_argument("--compression", default="zstd", choices=("zstd", "gzip"), help="initrd compression")
    parser.add_argument("--runs", type=int, default=5, help="no-change and one-service builds (medians)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    cache, out, spec = workdir / "cache", workdir / "out", workdir / "bench.yml"
    workdir.mkdir(parents=True, exist_ok=True)
    store = Store(cache)
    if store.lookup(ImageRef.parse(BIG_IMAGE)) is None:
        make_big_image(store, args.mb)
    spec.write_text(spec_text("first"))
    extra = ("--compression", args.compression)
    run_build(cache, spec, out, *extra)  # warm-up: components built, images recorded (not measured)

    for stale in ("layers", "segments", "build"):
        shutil.rmtree(cache / stale, ignore_errors=True)
    full, full_rss = run_build(cache, spec, out, *extra)
    none, none_rss = median_build(cache, spec, out, extra, [None] * args.runs)
    one, one_rss = median_build(cache, spec, out, extra, [f"change{n}" for n in range(args.runs)])
    gzip_time, plain_size = gzip6_seconds(out / "bench-initrd.img", workdir)

    initrd_size = (out / "bench-initrd.img").stat().st_size
    print(f"initrd compression: {args.compression}")
    print(f"uncompressed initrd {plain_size / 1e6:.0f} MB; initrd {initrd_size / 1e6:.0f} MB")
    print(f"gzip -6 (one thread) of the uncompressed initrd: {gzip_time:6.2f} s")
    print(f"full build (images in store):   {full:6.2f} s  {full / gzip_time:5.2f}x gzip -6   peak RSS {full_rss} MB")
    print(f"no-change rebuild (median):     {none:6.2f} s                  peak RSS {none_rss} MB")
    print(f"one service changed (median):   {one:6.2f} s  {one / full:5.1%} of full     peak RSS {one_rss} MB")


if __name__ == "__main__":
    main()
