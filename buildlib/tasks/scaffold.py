"""A starting project (`distrokit init`): a spec made of the built-in components, a `files:` example,
a dodo.py using the task API, and a .gitignore for the store and the outputs.

`distrokit build NAME.yml` and `distrokit run NAME` work in it at once; `doit` builds the same spec
into out/ incrementally. Nothing is overwritten: a folder that already holds one of these files is an
error naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..fsutil import write_bytes_atomic

SPEC = """\
# {name}: Debian's kernel, distrokit's init and runc, and a root shell on the console.
# Every image here is a component built into distrokit (`distrokit components` lists them); a folder
# components/NAME of your own, with a component.yml, takes the place of the built-in NAME.
kernel:
  image: distrokit/kernel
  cmdline: "console=ttyS0"
init:
  - distrokit/init
  - distrokit/runc
onboot:
  - name: sysctl
    image: distrokit/sysctl
services:
  - name: getty
    image: distrokit/getty
    env:
      - INSECURE=true  # a root shell without a login; remove it for a login prompt
files:
  # a boot hook the init runs at boot: the console shows its output
  - path: etc/distrokit/boot.d/50-hello
    mode: "0755"
    contents: |
      #!/bin/sh
      echo "hello from {name}"
"""

DODO = '''\
"""`doit` builds {name}.yml into out/, incrementally: the same tasks as `distrokit build`.

    doit            # build (a second run does nothing)
    doit list       # the tasks
    doit clean      # remove the outputs
"""

from buildlib.tasks.api import distrokit_tasks, monorepo_doit_config

DOIT_CONFIG = monorepo_doit_config(cache="cache")


def task_{task}():
    """{name}'s boot media in out/."""
    yield from distrokit_tasks(["{name}.yml"], cache="cache", out_dir="out", prefix="{name}-")
'''

GITIGNORE = """\
# distrokit's store and what builds write
/cache/
/out/
/.doit.db*
/{name}-kernel
/{name}-initrd.img
/{name}-cmdline
/{name}-state/
"""


@dataclass(frozen=True)
class Project:
    folder: Path
    name: str
    files: tuple[Path, ...]


def project_name(folder: Path) -> str:
    """A spec name from the folder's name: lower case, letters, digits and dashes."""
    name = re.sub(r"[^a-z0-9-]+", "-", folder.resolve().name.lower()).strip("-")
    return name or "system"


def init_project(folder: Path) -> Project:
    """Write the starting project into `folder` (created when missing)."""
    name = project_name(folder)
    task = re.sub(r"\W", "_", name)
    contents = {
        f"{name}.yml": SPEC.format(name=name),
        "dodo.py": DODO.format(name=name, task=task),
        ".gitignore": GITIGNORE.format(name=name),
    }
    taken = [folder / file for file in contents if (folder / file).exists()]
    if taken:
        raise BadInput(f"{taken[0]} already exists: `distrokit init` writes a new project, into an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    for file, text in contents.items():
        write_bytes_atomic(folder / file, text.encode())
    return Project(folder, name, tuple(folder / file for file in contents))
