"""Issues 10 and 29 benchmark: one monorepo of N generated specs (200 by default) under doit, through tasks.api.

Every spec shares the kernel, init, runc and sysctl components and runs a few of the getty, dhcpcd
and sshd services (configured per spec), plus a file of its own: thousands of tasks. The components
are built first, untimed (`distrokit build specs/sshd.yml` into the same store). Then, each a real
`doit` process whose wall time, CPU time (user + system) and peak RSS are measured: the first build,
no-change runs (issue 29's target: under 1 s for 200 specs, under 3 s for 1,000) and runs after one
spec changed (each run changes another spec; target: under 1.5 s plus that spec's own work).

    .venv/bin/python benchmarks/monorepo.py [--specs 200] [--workdir DIR] [-j 2] [--runs 3] [--against CHECKOUT]

`--against /path/to/other/checkout` (with its own .venv) measures that revision too, in its own
folder and store, alternating run by run, so both see the same moments of a shared machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.sidebyside import Revision, revisions  # noqa: E402

SERVICES = ("getty", "dhcpcd", "sshd")
SPEC = """\
kernel:
  image: "@pkg:{repo}/components/kernel"
  cmdline: "console=ttyS0 quiet"
init:
  - "@pkg:{repo}/components/init"
  - "@pkg:{repo}/components/runc"
onboot:
  - name: sysctl
    image: "@pkg:{repo}/components/sysctl"
services:
{services}
files:
  - path: etc/hostname
    contents: "{host}\\n"
"""
SERVICE = """\
  - name: {name}
    image: "@pkg:{repo}/components/{name}"
    env:
      - ROLE={role}
"""
DODO = """\
import os
from pathlib import Path
from buildlib.tasks.api import distrokit_tasks, monorepo_doit_config

DOIT_CONFIG = monorepo_doit_config(dep_file=".doit.db")
SPECS = sorted(Path("specs").glob("*.yml"))


def task_os():
    yield from distrokit_tasks(SPECS, cache=os.environ["DISTROKIT_CACHE"], out_dir="out", prefix="os-")
"""


def write_spec(folder: Path, index: int, word: str = "first", repo: Path = REPO) -> None:
    services = "".join(
        SERVICE.format(name=name, repo=repo, role=f"role{index % 7}")
        for n, name in enumerate(SERVICES)
        if (index + n) % 3 != 2  # two of the three services, which two varying by spec
    )
    text = SPEC.format(repo=repo, services=services, host=f"host{index:03d}-{word}")
    (folder / "specs" / f"os{index:03d}.yml").write_text(text)


# As installed, distrokit runs from compiled bytecode: the untimed warm-up writes it even where the
# environment says not to, so no measured run pays for compiling.
_ENV = {name: value for name, value in os.environ.items() if name not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
Figure = tuple[float, float, int, int]  # wall seconds, CPU seconds, peak RSS (kB), tasks that ran


class Checkout(Revision):
    """A revision's monorepo folder and store."""

    @property
    def folder(self) -> Path:
        return self.work / "repo"

    @property
    def store(self) -> Path:
        return self.work / "store"

    def median(self, what: str) -> Figure:
        """Median wall and CPU seconds, the largest peak RSS and number of tasks that ran."""
        return (
            self.column(what, 0),
            self.column(what, 1),
            int(self.column(what, 2, max)),
            int(self.column(what, 3, max)),
        )


def doit(checkout: Checkout, jobs: int) -> Figure:
    """Wall seconds, CPU seconds, peak RSS (kB) and the number of tasks that ran, of one `doit` process."""
    args = [checkout.python, "-m", "doit"] + (["-n", str(jobs), "-P", "thread"] if jobs > 1 else [])
    env = {**_ENV, "DISTROKIT_CACHE": str(checkout.store), "PYTHONPATH": str(checkout.repo)}
    log = checkout.folder / "doit.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=checkout.folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    if status != 0:
        raise SystemExit(f"doit failed ({checkout.label}): {text[-2000:]}")
    ran = sum(1 for line in text.splitlines() if line.startswith(".  "))
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, ran


def prepare(checkout: Checkout, specs: int) -> None:
    """The components built (untimed) into the checkout's store, and the monorepo's folder written."""
    (checkout.folder / "specs").mkdir(parents=True)
    checkout.store.mkdir()
    if (checkout.repo / "cache" / "debs").is_dir():
        (checkout.store / "debs").symlink_to(checkout.repo / "cache" / "debs")
    warm = [checkout.python, "-m", "buildlib.cli", "build", "specs/sshd.yml", "--cache", str(checkout.store)]
    subprocess.run([*warm, "--dir", str(checkout.work / "warm"), "-q"], cwd=checkout.repo, check=True, env=_ENV)
    (checkout.folder / "dodo.py").write_text(DODO)
    for index in range(specs):
        write_spec(checkout.folder, index, repo=checkout.repo)


def measure(checkouts: list[Checkout], specs: int, jobs: int, runs: int) -> None:
    """Each step once per checkout in turn: the revisions see the same moments of the machine."""
    for checkout in checkouts:
        checkout.note("first build", doit(checkout, jobs))
    for _ in range(runs):
        for checkout in checkouts:
            checkout.note("no change", doit(checkout, jobs))
    for number in range(runs):
        for checkout in checkouts:
            write_spec(checkout.folder, (specs // 2 + number * 7) % specs, word=f"changed{number}", repo=checkout.repo)
            checkout.note("one spec changed", doit(checkout, jobs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3, help="no-change and one-change runs (medians)")
    parser.add_argument("--against", type=Path, help="another checkout (with .venv) to measure alternately")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dk-monorepo-"))
    checkouts = [Checkout(r.label, r.repo, r.work) for r in revisions(REPO, work, args.against)]
    try:
        for checkout in checkouts:
            prepare(checkout, args.specs)
        measure(checkouts, args.specs, args.jobs, args.runs)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    for checkout in checkouts:
        for label in ("first build", "no change", "one spec changed"):
            seconds, cpu, rss, ran = checkout.median(label)
            print(
                f"{checkout.label:>12} {args.specs} specs, {label:17} {seconds:7.2f} s wall {cpu:7.2f} s CPU"
                f"  {ran:5d} tasks ran  peak RSS {rss / 1024:5.0f} MB"
            )
    if len(checkouts) == 2:
        new, old = checkouts
        for label in ("first build", "no change", "one spec changed"):
            wall = new.median(label)[0] / old.median(label)[0]
            cpu = new.median(label)[1] / old.median(label)[1]
            print(f"{label}: {wall:.2f}x the wall time, {cpu:.2f}x the CPU time of {old.label}")


if __name__ == "__main__":
    main()
