"""Issue 28 benchmark: what `build --provenance KEY.pem` adds to a build.

specs/minimal.yml is built once into a store (untimed). Then, alternating in the same run, the same
spec is built into a fresh output folder, as a release is cut: once plainly and once with
`--provenance` (an ed25519 key made here by `openssl genpkey`), each a real `distrokit build`
process. Medians of --runs, and the difference, are printed; so is the cost of the provenance alone
(its file removed, the build run again: only the statement is written and signed).

    .venv/bin/python benchmarks/provenance.py [--runs 5] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "minimal.yml"


def distrokit(cache: Path, *args: str) -> float:
    """Seconds of wall time of one `distrokit` process; a failure ends the benchmark."""
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-provenance-bench"))
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cache, key = work / "cache", work / "release.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, capture_output=True)
    distrokit(cache, "build", str(SPEC), "--dir", str(work / "warm"), "-q")

    plain: list[float] = []
    signed: list[float] = []
    alone: list[float] = []
    for run in range(args.runs):
        plain.append(distrokit(cache, "build", str(SPEC), "--dir", str(work / f"plain{run}"), "-q"))
        out = work / f"signed{run}"
        signed.append(distrokit(cache, "build", str(SPEC), "--dir", str(out), "-q", "--provenance", str(key)))
        statement = out / "minimal.intoto.jsonl"
        size = statement.stat().st_size
        statement.unlink()
        alone.append(distrokit(cache, "build", str(SPEC), "--dir", str(out), "-q", "--provenance", str(key)))
        if not statement.is_file():
            raise SystemExit(f"{statement} was not written again")

    def show(label: str, values: list[float]) -> None:
        runs = " ".join(f"{value:.3f}" for value in values)
        print(f"{label:<46} {statistics.median(values):6.3f} s   (runs {runs})")

    load = os.getloadavg()
    print(f"specs/minimal.yml into a fresh folder, {args.runs} runs each, load average {load[0]:.1f} (2 cores)")
    show("build", plain)
    show("build --provenance", signed)
    show("the provenance alone (its file removed)", alone)
    added = statistics.median(signed) - statistics.median(plain)
    print(f"--provenance adds {added:+.3f} s to a build; the statement is {size:,} bytes")


if __name__ == "__main__":
    main()
