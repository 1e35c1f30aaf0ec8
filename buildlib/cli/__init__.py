"""The `distrokit` command: argument parsing and printing. The only place that prints or exits.

One module per group of commands, each with a `register(sub)` that adds its parsers."""

from __future__ import annotations

import argparse
import atexit
import functools
import gc
import importlib
import os
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from ..collector import rare_collections
from ..errors import DistrokitError
from ..interrupts import Terminated, terminated_as_interrupted
from . import habits, jsonout
from .common import err_console

COMMAND_GROUPS = (
    "build",
    "run",
    "instances",
    "transfer",
    "store",
    "release",
    "project",
)  # modules with a `register(sub)`, in --help's order
# The group that registers each command: a command line builds its own command's parser alone, and the
# other groups' modules stay unloaded (a one-service rebuild is measured in tenths of a second).
GROUP_OF = {
    **dict.fromkeys(("build", "explain", "graph", "validate", "sbom"), "build"),
    "run": "run",
    **dict.fromkeys(("ps", "console"), "instances"),
    **dict.fromkeys(("pull", "push", "pkg"), "transfer"),
    "cache": "store",
    **dict.fromkeys(("lock", "verify", "attest"), "release"),
    **dict.fromkeys(("components", "init", "doctor"), "project"),
}


def parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of `argv`'s command alone when argv names a known one; else every command's (for --help,
    a mistyped command or no command at all, whose messages list them all)."""
    top = habits.LinuxKitParser(prog="distrokit", description="Build and boot minimal Linux systems from YAML specs.")
    top.add_argument("--version", action="version", version=f"distrokit {__version__}")
    top.add_argument("--cache", help="content-addressed store (env DISTROKIT_CACHE, default ./cache)")
    top.add_argument(
        "--components",
        metavar="DIR",
        help="the project's component recipes, for distrokit/NAME (env DISTROKIT_COMPONENTS, default "
        "./components); NAME not there is the built-in recipe NAME",
    )
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    top.add_argument(
        "--policy",
        metavar="FILE",
        help="containers-policy.json(5) every pull must pass, enforced by skopeo (env DISTROKIT_POLICY; "
        "default: skopeo's own, /etc/containers/policy.json)",
    )
    top.add_argument(
        "--registries-d",
        metavar="DIR",
        help="registries.d(5) folder: where image signatures are read and written (env DISTROKIT_REGISTRIES_D)",
    )
    habits.add_global_flags(top)
    # the subcommands' parsers are plain: the top one has already rewritten the whole command line
    sub = top.add_subparsers(dest="command", required=True, parser_class=argparse.ArgumentParser)

    command = command_named(argv) if argv is not None else None
    for group in [GROUP_OF[command]] if command in GROUP_OF else COMMAND_GROUPS:
        importlib.import_module(f"{__name__}.{group}").register(sub)
    habits.apply(top)
    return top


def command_named(argv: Sequence[str]) -> str | None:
    """The command word of a command line: its first word that is neither an option nor an option's value."""
    index = habits.command_index(argv)
    return None if index is None else argv[index]


@functools.cache  # once a process
def frozen_at_exit() -> None:
    """When the process exits, what it holds goes with it uncollected: `gc.freeze` at exit, before Python's
    finalization, which otherwise runs the cyclic collector over every object as it clears the modules
    (20-40 ms of CPU after a one-service rebuild, as much as its planning). Objects still go when their
    last reference does, with their finalizers; what only a cycle holds is left to the OS, whose memory it is."""
    atexit.register(gc.freeze)


def main(argv: Sequence[str] | None = None) -> int:
    frozen_at_exit()
    with rare_collections(), terminated_as_interrupted():
        return _main(sys.argv[1:] if argv is None else argv)


def _main(argv: Sequence[str]) -> int:
    args = parser(argv).parse_args(argv)
    habits.apply_verbosity(args)
    try:
        return int(args.func(args))
    except DistrokitError as exc:
        if args.debug:
            raise
        err_console.print(f"distrokit: error: {exc}", markup=False)
        if jsonout.wanted(args):
            jsonout.error(args, str(exc), exc.exit_code)
        return exc.exit_code
    except Terminated as ended:
        err_console.print(f"distrokit: terminated ({signal.Signals(ended.number).name})")
        return 128 + ended.number
    except KeyboardInterrupt:
        err_console.print("distrokit: interrupted")
        return 130
    except BrokenPipeError:
        return _pipe_closed()


def _pipe_closed() -> int:
    """The reader of stdout went away (`build -o - | head`): stop quietly, as a command killed by SIGPIPE
    would, with its exit status. Python's own flush of stdout at exit would fail again: point it at null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE
