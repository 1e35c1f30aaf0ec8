"""Issues 6 and 29 benchmark: full build, no-change rebuild and one-service rebuild, against their floors.

On a spec with the kernel (Debian's cloud kernel, all its modules), init and five services, one of
them carrying ~200 MB of layers, with every image already in the store. Each build is a real
`distrokit build` process; its wall time, CPU time (user + system) and peak RSS are measured side by
side with two floors in the same run: a single-threaded `gzip -6` of the uncompressed initrd (what a
full build compresses), and `cp` + fsync of the built initrd (what a one-service rebuild must at
least write: issue 29 asks for within 1.2x of it).

    .venv/bin/python benchmarks/build.py [--workdir DIR] [--mb 200] [--runs 5] [--against CHECKOUT]

Every figure is a median of --runs (each one-service build changes the service's command again; each
full build starts from a store without layers, segments or build records), so one noisy moment of a
shared machine does not decide them. `--against /path/to/other/checkout` (with its own .venv) runs
the same builds with that revision too, alternating build by build, each in its own store.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.sidebyside import Revision, revisions  # noqa: E402
from buildlib.outputs.compress import decompress  # noqa: E402
from buildlib.spec.refs import ImageRef  # noqa: E402
from buildlib.store.images import MEDIA_LAYER_GZIP, Store  # noqa: E402

BIG_IMAGE = "bench.invalid/big:1"
SPEC = """\
kernel:
  image: {kernel}
  cmdline: "console=ttyS0"
init:
  - {init}
services:
  - name: big
    image: {big}
    command: ["/bin/true"]
{small}
"""
SMALL = """\
  - name: small{n}
    image: {init}
    command: ["/bin/echo", "service {n} {word}"]
"""


def spec_text(repo: Path, word: str, kernel: str = "", init: str = "", big: str = BIG_IMAGE) -> str:
    """The spec, service small1's command saying `word`. The kernel and init are the component folders
    of `repo` (`@pkg:`) unless named (benchmarks/vs_linuxkit.py names them by their registry reference)."""
    kernel = kernel or f'"@pkg:{repo}/components/kernel-full"'
    init = init or f'"@pkg:{repo}/components/init"'
    small = "".join(SMALL.format(n=n, init=init, word=word if n == 1 else "steady") for n in range(1, 5))
    return SPEC.format(kernel=kernel, init=init, big=big, small=small)


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
_ENV = {name: value for name, value in os.environ.items() if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}


class Checkout(Revision):
    """A revision's store, output folder and spec."""

    @property
    def cache(self) -> Path:
        return self.work / "cache"

    @property
    def out(self) -> Path:
        return self.work / "out"

    @property
    def spec(self) -> Path:
        return self.work / "bench.yml"

    def write_spec(self, word: str) -> None:
        self.spec.write_text(spec_text(self.repo, word))

    def median(self, what: str) -> tuple[float, float, int]:
        """Median wall and CPU seconds, and the largest peak RSS (MB), of the runs of `what`."""
        return self.column(what, 0), self.column(what, 1), int(self.column(what, 2, max))


def run_build(checkout: Checkout, *extra: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one `distrokit build` process."""
    args = ["--cache", str(checkout.cache), "build", str(checkout.spec), "--dir", str(checkout.out), "-q", *extra]
    started = time.perf_counter()
    process = subprocess.Popen(
        [checkout.python, "-c", _REPORT_PEAK, *args],
        cwd=checkout.repo,
        env=_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"build failed ({checkout.label}): {errors}")
    peak_kb = int(errors.rsplit("peak-kb ", 1)[1].split()[0])
    return seconds, usage.ru_utime + usage.ru_stime, peak_kb // 1024


def copy_floor(checkout: Checkout) -> tuple[float, float, int]:
    """`cp` of the built initrd to a new file beside it, and its fsync: the least a build that writes
    the initrd again can do. The source is in the page cache, as the build's segments are."""
    initrd = checkout.out / "bench-initrd.img"
    copy = checkout.work / "floor-initrd.img"
    copy.unlink(missing_ok=True)
    before = os.times()
    started = time.perf_counter()
    subprocess.run(["cp", str(initrd), str(copy)], check=True)
    fd = os.open(copy, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    copy.unlink()
    return seconds, cpu + (after.system - before.system), 0


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


def prepare(checkout: Checkout, megabytes: int, extra: tuple[str, ...]) -> None:
    """The big image in the checkout's store, and a warm-up build (components built, images recorded)."""
    checkout.work.mkdir(parents=True, exist_ok=True)
    store = Store(checkout.cache)
    if store.lookup(ImageRef.parse(BIG_IMAGE)) is None:
        make_big_image(store, megabytes)
    checkout.write_spec("first")
    run_build(checkout, *extra)


def full_build(checkout: Checkout, extra: tuple[str, ...]) -> None:
    for stale in ("layers", "segments", "build"):
        shutil.rmtree(checkout.cache / stale, ignore_errors=True)
    checkout.note("full", run_build(checkout, *extra))


def measure(checkouts: list[Checkout], runs: int, extra: tuple[str, ...]) -> None:
    """Each step once per checkout in turn, --runs times: the revisions see the same moments."""
    for _ in range(runs):
        for checkout in checkouts:
            full_build(checkout, extra)
    for _ in range(runs):
        for checkout in checkouts:
            checkout.note("no change", run_build(checkout, *extra))
    for number in range(runs):
        for checkout in checkouts:
            checkout.write_spec(f"change{number}")
            checkout.note("one service", run_build(checkout, *extra))
            checkout.note("copy floor", copy_floor(checkout))


def report(checkouts: list[Checkout], gzip_time: float) -> None:
    print(f"{'':28}" + "".join(f"{c.label:>34}" for c in checkouts))
    print(f"{'':28}" + "".join(f"{'wall s':>12}{'CPU s':>10}{'RSS MB':>12}" for _ in checkouts))
    for what in ("full", "no change", "one service", "copy floor"):
        cells = []
        for checkout in checkouts:
            wall, cpu, rss = checkout.median(what)
            cells.append(f"{wall:12.3f}{cpu:10.3f}{rss if rss else '':>12}")
        print(f"{what:28}" + "".join(cells))
    for checkout in checkouts:
        one, floor, full = (checkout.median(what)[0] for what in ("one service", "copy floor", "full"))
        print(f"{checkout.label}: one service {one / floor:.2f}x the copy floor; full {full / gzip_time:.2f}x gzip -6")
    if len(checkouts) == 2:
        new, old = checkouts
        for what in ("full", "no change", "one service"):
            print(f"{what}: {new.median(what)[0] / old.median(what)[0]:.2f}x the wall time of {old.label}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-bench"))
    parser.add_argument("--mb", type=int, default=200, help="size of the big service's layers")
    parser.add_argument("--compression", default="zstd", choices=("zstd", "gzip"), help="initrd compression")
    parser.add_argument("--runs", type=int, default=5, help="builds of each kind (medians)")
    parser.add_argument("--against", type=Path, help="another checkout (with .venv) to measure alternately")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    checkouts = [Checkout(r.label, r.repo, r.work) for r in revisions(REPO, workdir, args.against)]
    extra = ("--compression", args.compression)
    for checkout in checkouts:
        prepare(checkout, args.mb, extra)
    measure(checkouts, args.runs, extra)
    initrd = checkouts[0].out / "bench-initrd.img"
    gzip_time, plain_size = gzip6_seconds(initrd, workdir)
    print(f"initrd compression: {args.compression}")
    print(f"uncompressed initrd {plain_size / 1e6:.0f} MB; initrd {initrd.stat().st_size / 1e6:.0f} MB")
    print(f"gzip -6 (one thread) of the uncompressed initrd: {gzip_time:6.2f} s")
    report(checkouts, gzip_time)


if __name__ == "__main__":
    main()
