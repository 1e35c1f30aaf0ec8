"""Issue 10 benchmark: one monorepo of N generated specs (200 by default) under doit, through tasks.api.

Every spec shares the kernel, init, runc and sysctl components and runs a few of the getty, dhcpcd
and sshd services (configured per spec), plus a file of its own: thousands of tasks. The components
are built first, untimed (`distrokit build specs/sshd.yml` into the same store). Then, each a real
`doit` process whose wall time and peak RSS are measured: the first build, a no-change run (target:
under 2 s) and a run after one spec changed.

    .venv/bin/python benchmarks/monorepo.py [--specs 200] [--workdir DIR] [-j 2]
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


def write_spec(folder: Path, index: int, word: str = "first") -> None:
    services = "".join(
        SERVICE.format(name=name, repo=REPO, role=f"role{index % 7}")
        for n, name in enumerate(SERVICES)
        if (index + n) % 3 != 2  # two of the three services, which two varying by spec
    )
    text = SPEC.format(repo=REPO, services=services, host=f"host{index:03d}-{word}")
    (folder / "specs" / f"os{index:03d}.yml").write_text(text)


def doit(folder: Path, store: Path, jobs: int) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (kB) and the number of tasks that ran, of one `doit` process."""
    args = [sys.executable, "-m", "doit"] + (["-n", str(jobs), "-P", "thread"] if jobs > 1 else [])
    env = {**os.environ, "DISTROKIT_CACHE": str(store), "PYTHONPATH": str(REPO)}
    log = folder / "doit.log"
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    if status != 0:
        raise SystemExit(f"doit failed: {text[-2000:]}")
    ran = sum(1 for line in text.splitlines() if line.startswith(".  "))
    return seconds, usage.ru_maxrss, ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", type=int, default=200)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dk-monorepo-"))
    folder, store = work / "repo", work / "store"
    (folder / "specs").mkdir(parents=True)
    store.mkdir()
    if (REPO / "cache" / "debs").is_dir():
        (store / "debs").symlink_to(REPO / "cache" / "debs")
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "buildlib.cli",
                "build",
                "specs/sshd.yml",
                "--cache",
                str(store),
                "--dir",
                str(work / "warm"),
                "-q",
            ],
            cwd=REPO,
            check=True,
        )
        (folder / "dodo.py").write_text(DODO)
        for index in range(args.specs):
            write_spec(folder, index)
        results = [("first build", doit(folder, store, args.jobs))]
        results.append(("no change", doit(folder, store, args.jobs)))
        write_spec(folder, args.specs // 2, word="changed")
        results.append(("one spec changed", doit(folder, store, args.jobs)))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    for label, (seconds, rss, ran) in results:
        print(f"{args.specs} specs, {label:17} {seconds:7.2f} s  {ran:5d} tasks ran  peak RSS {rss / 1024:5.0f} MB")


if __name__ == "__main__":
    main()
