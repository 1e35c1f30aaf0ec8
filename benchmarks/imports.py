"""What distrokit costs before it does any work (issue 29): CPU of its imports, of a build with nothing to do
and of `doit list`, side by side with another checkout, the runs alternating.

    .venv/bin/python benchmarks/imports.py --against ../other-checkout

Figures (median CPU seconds, user + system, of separate processes):
- `import buildlib.cli`: what every command pays;
- the build path: importing what `distrokit build` loads when it runs doit;
- build, stamp current: `distrokit build` of specs/minimal.yml when its stamp says nothing changed;
- build, stamp stale: the same after the spec is touched, so doit loads and finds every task up to date
  (the import path of any rebuild, a one-service change included);
- `doit list` in the checkout (dodo.py through buildlib.tasks, every spec of specs/ planned).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sidebyside import Revision, revisions  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
# the checkout under test is the working folder of each process: its buildlib comes first on sys.path
_ENV = {name: value for name, value in os.environ.items() if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
KINDS = ("import buildlib.cli", "import the build path", "build, stamp current", "build, stamp stale", "doit list")
# what `distrokit build` loads when doit runs (tests/cli/test_build_imports.py holds the same list)
BUILD_PATH = (
    "buildlib.cli.build, buildlib.tasks, buildlib.tasks.stamp, buildlib.outputs, buildlib.outputs.compress, "
    "buildlib.outputs.preflight, buildlib.debian.recipes, buildlib.spec.model, buildlib.rootfs.sbom"
)


def cpu_seconds(rev: Revision, argv: list[str]) -> float:
    """User + system CPU seconds of one process run in the checkout (which must succeed)."""
    env = {**_ENV, "DISTROKIT_CACHE": str(rev.work / "cache")}
    process = subprocess.Popen(argv, cwd=rev.repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{rev.label}: {' '.join(argv)} failed: {errors.decode(errors='replace')}")
    return usage.ru_utime + usage.ru_stime


def build_argv(rev: Revision) -> list[str]:
    store, out = rev.work / "cache", rev.work / "out"
    return [
        rev.python,
        "-m",
        "buildlib.cli",
        "--cache",
        str(store),
        "build",
        "-q",
        "--dir",
        str(out),
        str(rev.work / "minimal.yml"),
    ]


def prepare(rev: Revision) -> None:
    """A spec of the checkout's own, built once (twice: the second run writes the stamp)."""
    rev.work.mkdir(parents=True, exist_ok=True)
    spec = rev.work / "minimal.yml"
    spec.write_text(
        (rev.repo / "specs" / "minimal.yml").read_text().replace("../components/", f"{rev.repo}/components/")
    )
    for _ in range(2):
        cpu_seconds(rev, build_argv(rev))


def one_round(rev: Revision) -> None:
    spec = rev.work / "minimal.yml"
    rev.note(KINDS[0], (cpu_seconds(rev, [rev.python, "-c", "import buildlib.cli"]),))
    rev.note(KINDS[1], (cpu_seconds(rev, [rev.python, "-c", f"import {BUILD_PATH}"]),))
    rev.note(KINDS[2], (cpu_seconds(rev, build_argv(rev)),))
    os.utime(spec)  # the stamp no longer matches: doit runs and finds every task up to date
    rev.note(KINDS[3], (cpu_seconds(rev, build_argv(rev)),))
    rev.note(KINDS[4], (cpu_seconds(rev, [rev.python, "-m", "doit", "list"]),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-imports"))
    parser.add_argument("--runs", type=int, default=7, help="processes of each kind (medians)")
    parser.add_argument("--against", type=Path, help="another checkout to measure alternately")
    args = parser.parse_args()
    revs = revisions(REPO, args.workdir.resolve(), args.against)
    for rev in revs:
        prepare(rev)
    for _ in range(args.runs):
        for rev in revs:
            one_round(rev)
    print("median CPU seconds (user + system) of", args.runs, "processes each")
    print(f"{'':24}" + "".join(f"{rev.label:>14}" for rev in revs))
    for kind in KINDS:
        print(f"{kind:24}" + "".join(f"{rev.column(kind, 0):14.3f}" for rev in revs))


if __name__ == "__main__":
    main()
