"""Issue 14 benchmark: specs/minimal.yml built for amd64 and for arm64, and each booted to power-off.

Each build is a real `distrokit build` process into a fresh store whose .deb folder was filled by a
warm-up build (so the figure is the build, not the download); apt's arm64 package lists are already
fetched. Then the same store builds the other architecture's output again (nothing should run), and
each output boots under QEMU TCG (`distrokit run`): qemu-system-x86_64 for amd64, qemu-system-aarch64
`virt` for arm64.

    .venv/bin/python benchmarks/arm64.py [--workdir DIR] [--runs 1] [--no-boot]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "minimal.yml"
ARCHES = ("amd64", "arm64")


def distrokit(cache: Path, *args: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    return seconds, done.stderr


def fresh_store(workdir: Path, name: str) -> Path:
    cache = workdir / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "debs").symlink_to(workdir / "debs", target_is_directory=True)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-boot", action="store_true")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="distrokit-arm64-bench-"))
    (workdir / "debs").mkdir(parents=True, exist_ok=True)
    out = workdir / "out"
    warm = fresh_store(workdir, "warm")
    for arch in ARCHES:  # fills debs/ (and apt's arm64 lists)
        distrokit(warm, "build", "-q", "--arch", arch, "--dir", str(out), str(SPEC))
    builds: dict[str, list[float]] = {arch: [] for arch in ARCHES}
    switched: dict[str, list[float]] = {arch: [] for arch in ARCHES}
    for run in range(args.runs):
        cache = fresh_store(workdir, f"store-{run}")
        for arch in ARCHES:
            seconds, _ = distrokit(cache, "build", "-q", "--arch", arch, "--dir", str(out), str(SPEC))
            builds[arch].append(seconds)
        for arch in ARCHES:  # the other architecture's build in between: both are still up to date
            seconds, _ = distrokit(cache, "build", "-q", "--arch", arch, "--dir", str(out), str(SPEC))
            switched[arch].append(seconds)
    for arch in ARCHES:
        print(
            f"{arch}: full build {statistics.median(builds[arch]):.1f} s, "
            f"again after the other arch {statistics.median(switched[arch]):.2f} s (median of {args.runs})"
        )
    if args.no_boot:
        return
    for arch, prefix in (("amd64", "minimal"), ("arm64", "minimal-arm64")):
        seconds, stderr = distrokit(warm, "run", "--networking", "none", "--timeout", "900", str(out / prefix))
        print(f"{arch}: boot to power-off {seconds:.1f} s ({stderr.strip().splitlines()[-1]})")


if __name__ == "__main__":
    main()
