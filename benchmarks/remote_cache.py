"""Issue 10 benchmark: a second machine (an empty store) building from a registry cache, against a cold build.

Three `distrokit build specs/sshd.yml` processes, each with its own store, and one loopback
docker-registry as the shared cache:
  seed    an empty store, --cache-to the registry (a CI runner filling the cache)
  cold    an empty store, no cache (what every runner did before)
  fetch   an empty store, --cache-from the registry (the second machine)
The .deb files are shared by the seed and cold stores (a cold build is timed without downloads); the
fetch store has none and needs none. Prints wall time and peak RSS of each, the fetch/cold ratio, and
checks that fetch wrote the same bytes as cold.

    .venv/bin/python benchmarks/remote_cache.py [--workdir DIR] [--spec specs/sshd.yml]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from registry import running_registry  # noqa: E402


def timed(command: list[str]) -> tuple[float, int, dict]:  # type: ignore[type-arg]
    """Wall seconds, peak RSS (kB) and the --json document of one build process."""
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed ({status})")
    return time.monotonic() - started, usage.ru_maxrss, json.loads(output)


def build(store: Path, out: Path, spec: str, *extra: str) -> tuple[float, int, dict]:  # type: ignore[type-arg]
    distrokit = [sys.executable, "-m", "buildlib.cli"]
    return timed([*distrokit, "build", spec, "--cache", str(store), "--dir", str(out), "--json", "-q", *extra])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--spec", default="specs/sshd.yml")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dk-remote-"))
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for name in ("seed", "cold"):
        (work / name).mkdir()
        (work / name / "debs").symlink_to(debs)
    try:
        with running_registry(work / "registry") as registry:
            repo = f"{registry.host}/distrokit-cache"
            build(
                work / "seed", work / "out-seed", args.spec, "--cache-from", repo, "--cache-to", repo
            )  # fills debs too
            cold = build(work / "cold", work / "out-cold", args.spec)
            fetch = build(work / "fetch", work / "out-fetch", args.spec, "--cache-from", repo)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    for label, (seconds, rss, doc) in (("cold local build", cold), ("from the registry", fetch)):
        counts = doc["counts"]
        print(
            f"{label:18} {seconds:6.1f} s  peak RSS {rss / 1024:6.0f} MB  "
            f"ran {counts['ran']}, fetched {counts['fetched']}, up to date {counts['up_to_date']}"
        )
    same = [o["sha256"] for o in cold[2]["outputs"]] == [o["sha256"] for o in fetch[2]["outputs"]]
    print(f"ratio fetch/cold: {fetch[0] / cold[0]:.2f}; identical outputs: {same}")


if __name__ == "__main__":
    main()
