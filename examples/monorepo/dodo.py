"""A monorepo's dodo.py: its own tasks and distrokit's, in one doit graph.

    doit                      # build generated/motd, both OS images, then out/SHA256SUMS
    doit list --all           # every task, distrokit's named os-...

`motd` is an ordinary task; os/web.yml takes its output as a `files` source, so changing motd.in
reruns `motd`, web's files part, web's output and `checksums`, and nothing of db. `checksums`
depends on distrokit's outputs. DISTROKIT_CACHE picks the store (default: the repository's cache/).
"""

import hashlib
import os
from pathlib import Path

from buildlib.tasks.api import distrokit_tasks, monorepo_doit_config, output_files

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("DISTROKIT_CACHE", HERE.parents[1] / "cache"))
OUT = HERE / "out"
SPECS = {"web": ["os/web.yml"], "db": ["os/db.yml"]}

DOIT_CONFIG = monorepo_doit_config(cache=CACHE)


def task_motd():
    """Render the message of the day that os/web.yml puts at /etc/motd."""

    def render():
        Path("generated").mkdir(exist_ok=True)
        Path("generated/motd").write_text(Path("motd.in").read_text().format(host="web"))

    return {"actions": [render], "file_dep": ["motd.in"], "targets": ["generated/motd"]}


def task_os():
    """Both OS images (every distrokit task is named os-...)."""
    yield from distrokit_tasks(SPECS, cache=CACHE, out_dir=OUT, components=HERE.parents[1] / "components", prefix="os-")


def task_checksums():
    """SHA256SUMS of every OS image file: a task downstream of distrokit's outputs."""
    files = [path for name in SPECS for path in output_files(OUT, name)]

    def write():
        lines = [f"{hashlib.sha256(Path(f).read_bytes()).hexdigest()}  {Path(f).name}\n" for f in sorted(files)]
        (OUT / "SHA256SUMS").write_text("".join(lines))

    return {"actions": [write], "file_dep": files, "targets": [str(OUT / "SHA256SUMS")]}
