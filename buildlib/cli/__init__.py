"""The `distrokit` command: argument parsing and printing. The only place that prints or exits.

One module per group of commands, each with a `register(sub)` that adds its parsers."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import __version__
from ..errors import DistrokitError
from . import build, habits, jsonout, release, run, store, transfer
from .common import err_console

COMMAND_GROUPS = (build, run, transfer, store, release)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="distrokit", description="Build and boot minimal Linux systems from YAML specs.")
    top.add_argument("--version", action="version", version=f"distrokit {__version__}")
    top.add_argument("--cache", help="content-addressed store (env DISTROKIT_CACHE, default ./cache)")
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    for group in COMMAND_GROUPS:
        group.register(sub)
    habits.apply(top)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DistrokitError as exc:
        if args.debug:
            raise
        err_console.print(f"distrokit: error: {exc}", markup=False)
        if jsonout.wanted(args):
            jsonout.error(args, str(exc), exc.exit_code)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("distrokit: interrupted")
        return 130
