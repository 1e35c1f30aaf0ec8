"""Issue 24 benchmark: what audit mode's read check costs, and that audit off costs nothing.

Builds specs/minimal.yml (-f kernel+initrd, -j 2) under a fresh --name each time into one warm store
(components and images up to date: every part and output task runs), as real `distrokit build`
processes, alternating between the code under test and, with --before, another checkout of
distrokit (e.g. `git archive main | tar -x -C DIR`), with audit off, and the code under test with
`DISTROKIT_AUDIT=1` (the read check and the recomputation of up-to-date tasks).

    .venv/bin/python benchmarks/audit_cost.py [--before DIR] [--runs 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "minimal.yml"


def timed_build(code: Path, cache: Path, out: Path, name: str, audit: bool) -> float:
    env = dict(os.environ, PYTHONPATH=str(code), DISTROKIT_CACHE=str(cache), DISTROKIT_AUDIT="1" if audit else "0")
    command = [sys.executable, "-c", "import sys; from buildlib.cli import main; sys.exit(main())"]
    command += ["build", "-j", "2", "--dir", str(out), "--name", name, str(SPEC)]
    started = time.monotonic()
    subprocess.run(command, env=env, check=True, capture_output=True, cwd=code)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout, timed with audit off beside this one")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-audit-bench"))
    args = parser.parse_args()
    cache, out = args.workdir / "cache", args.workdir / "out"
    timed_build(REPO, cache, out, "warm", audit=False)  # components and images into the store
    setups = [("after, audit off", REPO, False), ("after, audit on", REPO, True)]
    if args.before is not None:
        setups.insert(0, ("before, audit off", args.before.resolve(), False))
    times: dict[str, list[float]] = {label: [] for label, _, _ in setups}
    for run in range(args.runs):  # interleaved, so a noisy moment of a shared machine hits every setup
        for index, (label, code, audit) in enumerate(setups):
            times[label].append(timed_build(code, cache, out, f"bench-{run}-{index}-{time.time_ns()}", audit))
    for label, seconds in times.items():
        each = ", ".join(f"{s:.2f}" for s in seconds)
        print(f"{label:20} median {statistics.median(seconds):6.2f} s  ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
