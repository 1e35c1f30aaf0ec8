"""Benchmark: a first build of a spec of many components, each built from Debian packages.

tests/specs/packages.yml names 18 components (LinuxKit's packages and a Debian base among them). Each
run builds it into a fresh store whose debs/ folder is shared, so no .deb is downloaded in a measured
run (a warm-up build fetches them), and with a fresh apt state folder (DISTROKIT_APT_STATE), so apt's
binary caches are made in the run as on a new machine. Wall and CPU time (user + system, the build and
every process it ran) as medians of --runs, side by side with --against, alternating run by run; each
revision builds its own tests/specs/packages.yml, so its own components/ recipes.

    .venv/bin/python benchmarks/components.py [--runs 3] [--workdir DIR] [--against CHECKOUT]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.sidebyside import Revision, revisions  # noqa: E402

SPEC = Path("tests", "specs", "packages.yml")  # each revision's own, with its own components/ recipes


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def first_build(revision: Revision, debs: Path, run: int) -> tuple[float, float]:
    """Wall and CPU seconds of one `distrokit build` of the spec into a fresh store."""
    work = revision.work / f"run-{run}"
    shutil.rmtree(work, ignore_errors=True)
    (work / "cache").mkdir(parents=True)
    (work / "cache" / "debs").symlink_to(debs, target_is_directory=True)
    env = {**os.environ, "DISTROKIT_APT_STATE": str(work / "apt")}
    command = [revision.python, "-m", "buildlib.cli", "--cache", str(work / "cache")]
    command += ["build", str(revision.repo / SPEC), "--dir", str(work / "out"), "-q"]
    started, cpu = time.monotonic(), children_cpu()
    done = subprocess.run(command, cwd=revision.repo, env=env, capture_output=True, text=True)
    figures = time.monotonic() - started, children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"build failed ({revision.label}): {done.stderr[-2000:]}")
    shutil.rmtree(work)
    return figures


def fetch_debs(revision: Revision, debs: Path) -> None:
    """A warm-up build whose store keeps its .deb files in `debs`, shared by every measured run."""
    debs.mkdir(parents=True, exist_ok=True)
    cache = revision.work / "warm-up"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "debs").symlink_to(debs, target_is_directory=True)
    command = [revision.python, "-m", "buildlib.cli", "--cache", str(cache), "build", str(revision.repo / SPEC)]
    subprocess.run([*command, "--dir", str(cache / "out"), "-q"], cwd=revision.repo, check=True)
    shutil.rmtree(cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-bench-components"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout (with .venv) to measure alternately")
    args = parser.parse_args()
    checkouts = revisions(REPO, args.workdir, args.against)
    debs = args.workdir / "debs"
    for revision in checkouts:  # each revision's recipes may take other .debs
        fetch_debs(revision, debs)
    for run in range(args.runs):
        for revision in checkouts:
            revision.note("first build", first_build(revision, debs, run))
    print(f"{SPEC} on a fresh store (.debs shared), medians of {args.runs} runs:")
    print(f"{'':>14}" + "".join(f"{r.label:>22}" for r in checkouts))
    print(f"{'':>14}" + "".join(f"{'wall s':>11}{'CPU s':>11}" for _ in checkouts))
    row = "".join(f"{r.column('first build', 0):>11.1f}{r.column('first build', 1):>11.1f}" for r in checkouts)
    print(f"{'first build':>14}{row}")
    if len(checkouts) == 2:
        ratio = checkouts[0].column("first build", 0) / checkouts[1].column("first build", 0)
        print(f"first build: {ratio:.2f}x the wall time of {checkouts[1].label}")


if __name__ == "__main__":
    main()
