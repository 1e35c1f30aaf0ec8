"""`ps` and `console`: the instances started with a state folder, and the console of a detached one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..guest.console import ATTACH_ESCAPES
from ..lazy import lazy_module
from .common import Subparsers, err_console, print_table, show_console

if TYPE_CHECKING:  # loaded when the command runs, not when the parser is made for another one
    from ..guest import instance, reattach, roster
else:
    instance, reattach, roster = (lazy_module(f"buildlib.guest.{name}") for name in ("instance", "reattach", "roster"))


def cmd_ps(args: argparse.Namespace) -> int:
    rows = []
    for item in roster.listed():
        status = "running" if item.pid is not None else "stopped"
        pid = str(item.pid) if item.pid is not None else "-"
        ports = ", ".join(item.recorded.publish) or "-"
        rows.append((str(item.state), status, pid, item.recorded.prefix or "?", ports))
    if not rows:
        err_console.print(f"no instances (a run with --state adds its folder to {roster.roster_dir()})")
        return 0
    print_table(("state", "status", "pid", "boots", "ports"), rows)
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    state = instance.StateDir(Path(args.state).resolve())
    connection = reattach.connect(state)
    terminal = sys.stdin.isatty() and sys.stdout.isatty()
    if terminal:
        err_console.print(f"console of {state.path}: {ATTACH_ESCAPES}")
    with connection:
        ended = reattach.attach(connection, sys.stdin.fileno(), show_console, terminal)
    if ended == "detached":
        err_console.print(f"detached; the instance runs on (stop it with: distrokit run --state {state.path} --stop)")
    else:
        err_console.print(f"the instance in {state.path} ended")
    return 0


def register(sub: Subparsers) -> None:
    ps = sub.add_parser(
        "ps",
        help="list the instances started with a state folder: running or stopped, pid, output, ports",
        description="List the instances started with `run --state DIR` (or --detached) by this user, "
        "from the roster in ~/.cache/distrokit/instances (XDG_CACHE_HOME); folders that are gone are dropped.",
    )
    ps.set_defaults(func=cmd_ps)
    console = sub.add_parser(
        "console",
        help="attach to the console of an instance running in the background",
        description="Attach to the serial console of an instance started with --detached. On a terminal "
        f"every key goes to the guest; {ATTACH_ESCAPES}. Its whole output is in DIR/console.log.",
    )
    console.add_argument("state", metavar="DIR", help="the instance's state folder")
    console.set_defaults(func=cmd_console)
