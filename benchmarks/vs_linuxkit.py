"""Issue 29 benchmark: distrokit against LinuxKit's `linuxkit build`, the same spec, side by side.

The shape of benchmarks/build.py (Debian's cloud kernel with every module from components/kernel-full,
init, five services, one of them carrying ~200 MB of layers; kernel+initrd output), its images pushed
to a docker-registry on 127.0.0.1 and named by their registry reference in the one spec both tools
build. Each tool pulls them once into its own store (LinuxKit: its cache) in a warm-up build; then,
alternating build by build, --runs times each:

- full: distrokit as benchmarks/build.py's full build (layers/, segments/ and build/ of its store
  removed, the images kept); LinuxKit with the images in its cache (it has no other kind of build);
- no change: the same spec again;
- one service: the spec with one service's command edited.

Wall time, CPU time (user + system of the build process and what it waited for) and peak RSS; the
medians of the runs (the largest peak), and distrokit/LinuxKit for each. Then one more distrokit full
build with --json says where its time goes. LinuxKit is --linuxkit, else `linuxkit` on PATH, else
/opt/linuxkit/bin/linuxkit; without one the benchmark says so and stops.

    .venv/bin/python benchmarks/vs_linuxkit.py [--linuxkit PATH] [--runs 5] [--mb 200] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from registry import running_registry  # noqa: E402

from benchmarks.build import (  # noqa: E402
    _ENV,
    _REPORT_PEAK,
    BIG_IMAGE,
    Checkout,
    full_build,
    make_big_image,
    run_build,
    spec_text,
)
from buildlib.store.images import Store  # noqa: E402

OPT_LINUXKIT = Path("/opt/linuxkit/bin/linuxkit")
KINDS = ("full", "no change", "one service")


@dataclass
class Side(Checkout):
    """One tool's store (LinuxKit's cache), output folder and spec, the spec naming `images`."""

    images: dict[str, str] = field(default_factory=dict)

    def write_spec(self, word: str) -> None:
        self.spec.write_text(spec_text(self.repo, word, **self.images))


def find_linuxkit(given: Path | None) -> Path | None:
    if given is not None:
        return given if given.is_file() else None
    on_path = shutil.which("linuxkit")
    if on_path:
        return Path(on_path)
    return OPT_LINUXKIT if OPT_LINUXKIT.is_file() else None


def distrokit(side: Checkout, *args: str) -> str:
    """Run distrokit with `side`'s store; its stdout."""
    done = subprocess.run(
        [side.python, "-c", _REPORT_PEAK, "--cache", str(side.cache), *args],
        cwd=side.repo,
        env=_ENV,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"distrokit {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def run_linuxkit(side: Side, binary: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one `linuxkit build`. GNU time reports its CPU and
    peak: the RSS a child of this process reports counts this process's own (fork copies it)."""
    args = [str(binary), "build", "--cache", str(side.cache), "--format", "kernel+initrd"]
    args += ["--dir", str(side.out), "--name", "bench", str(side.spec)]
    gnu_time = shutil.which("time")
    report = side.work / "time.txt"
    if gnu_time:
        args = [gnu_time, "-f", "%U %S %M", "-o", str(report), *args]
    started = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, errors = process.communicate()
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"linuxkit build failed: {errors}")
    if not gnu_time:
        return seconds, 0.0, 0  # no GNU time (Debian's `time`): no CPU or peak figures
    user, system, peak_kb = report.read_text().split()[-3:]
    return seconds, float(user) + float(system), int(peak_kb) // 1024


def push_images(source: Checkout, megabytes: int, host: str) -> dict[str, str]:
    """The kernel, init and big images built in `source`'s store and pushed to the registry at `host`;
    the spec's names for them."""
    source.work.mkdir(parents=True, exist_ok=True)
    make_big_image(Store(source.cache), megabytes)
    built = distrokit(source, "pkg", "build", "components/kernel-full", "components/init").split()
    kernel, init = (ref for ref in built if ref.startswith("distrokit/"))
    images = {"kernel": f"{host}/bench/kernel-full:1", "init": f"{host}/bench/init:1", "big": f"{host}/bench/big:1"}
    for ref, name in ((kernel, "kernel"), (init, "init"), (BIG_IMAGE, "big")):
        distrokit(source, "push", "-q", ref, images[name])
    return images


def where_time_goes(side: Side, extra: tuple[str, ...]) -> None:
    """One more distrokit full build, with --json: its slowest tasks."""
    for stale in ("layers", "segments", "build"):
        shutil.rmtree(side.cache / stale, ignore_errors=True)
    args = ("build", str(side.spec), "--dir", str(side.out), "-q", "--json", *extra)
    timings = json.loads(distrokit(side, *args))["timings"]
    tasks = sorted(timings["tasks"].items(), key=lambda item: -item[1])
    print(f"distrokit full build, --json: {timings['total_seconds']:.2f} s in all; slowest tasks (s):")
    for name, seconds in tasks[:10]:
        print(f"  {seconds:7.3f}  {name}")
    print(f"  {sum(seconds for _, seconds in tasks[10:]):7.3f}  the other {max(len(tasks) - 10, 0)} tasks")


def measure(dk: Side, lk: Side, binary: Path, runs: int, extra: tuple[str, ...]) -> None:
    """Each kind of build by one tool then the other, --runs times: both see the same moments."""
    for _ in range(runs):
        full_build(dk, extra)
        lk.note("full", run_linuxkit(lk, binary))
    for _ in range(runs):
        dk.note("no change", run_build(dk, *extra))
        lk.note("no change", run_linuxkit(lk, binary))
    for number in range(runs):
        dk.write_spec(f"change{number}")
        dk.note("one service", run_build(dk, *extra))
        lk.write_spec(f"change{number}")
        lk.note("one service", run_linuxkit(lk, binary))


def report(dk: Side, lk: Side) -> None:
    print(f"{'':14}{'distrokit':>30}{'LinuxKit':>30}{'distrokit/LinuxKit':>30}")
    print(f"{'':14}" + f"{'wall s':>10}{'CPU s':>10}{'RSS MB':>10}" * 3)
    for what in KINDS:
        (dw, dc, dr), (lw, lc, lr) = dk.median(what), lk.median(what)
        ratios = [f"{a / b:10.3f}" if b else f"{'-':>10}" for a, b in ((dw, lw), (dc, lc), (dr, lr))]
        print(f"{what:14}{dw:10.3f}{dc:10.3f}{dr:10}{lw:10.3f}{lc:10.3f}{lr:10}" + "".join(ratios))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--linuxkit", type=Path, help=f"the linuxkit binary (default: on PATH, else {OPT_LINUXKIT})")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-vs-linuxkit"))
    parser.add_argument("--mb", type=int, default=200, help="size of the big service's layers")
    parser.add_argument("--compression", default="zstd", choices=("zstd", "gzip"), help="distrokit's initrd")
    parser.add_argument("--runs", type=int, default=5, help="builds of each kind (medians)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (stores, outputs)")
    args = parser.parse_args()
    binary = find_linuxkit(args.linuxkit)
    if binary is None:
        print("skipped: no linuxkit binary (give --linuxkit PATH, put linuxkit on PATH or build it into", end=" ")
        print(f"{OPT_LINUXKIT})")
        return
    workdir = args.workdir.resolve()
    parts = ("source", "registry", "distrokit", "linuxkit")
    for part in parts:
        shutil.rmtree(workdir / part, ignore_errors=True)
    extra = ("--compression", args.compression)
    try:
        with running_registry(workdir / "registry") as registry:
            images = push_images(Checkout("source", REPO, workdir / "source"), args.mb, registry.host)
            dk = Side("distrokit", REPO, workdir / "distrokit", images=images)
            lk = Side("linuxkit", REPO, workdir / "linuxkit", images=images)
            for side in (dk, lk):
                side.out.mkdir(parents=True)  # LinuxKit does not make --dir
                side.write_spec("first")
            run_build(dk, *extra)  # the warm-up builds pull the images
            run_linuxkit(lk, binary)
            measure(dk, lk, binary, args.runs, extra)
            version = subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout.split()
            print(f"LinuxKit: {binary} ({' '.join(version[2:3] + version[-1:])}); {args.runs} runs each")
            for side, name in ((dk, f"distrokit ({args.compression})"), (lk, "LinuxKit (gzip)")):
                initrd = side.out / "bench-initrd.img"
                print(f"{name} initrd: {initrd.stat().st_size / 1e6:.1f} MB")
            report(dk, lk)
            where_time_goes(dk, extra)
    finally:
        if not args.keep:
            for part in parts:
                shutil.rmtree(workdir / part, ignore_errors=True)
            if workdir.is_dir() and not any(workdir.iterdir()):
                workdir.rmdir()


if __name__ == "__main__":
    main()
