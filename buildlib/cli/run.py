"""`run`: boot an output in QEMU with the console here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import runner
from .common import Subparsers, err_console


def cmd_run(args: argparse.Namespace) -> int:
    options = runner.RunOptions(
        prefix=output_prefix(Path(args.path)),
        mem=args.mem,
        cpus=args.cpus,
        timeout=args.timeout,
        accel=args.accel,
        networking=args.networking,
        publish=tuple(runner.Publish.parse(text) for text in args.publish or ()),
        disks=tuple(runner.Disk.parse(text) for text in args.disk or ()),
        arch=args.arch,
    )

    def show(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    result = runner.run(options, on_output=show)
    ended = "halted (QEMU stopped)" if result.halted else "powered off"
    err_console.print(f"guest {ended} after {result.seconds:.1f} s ({result.accel})")
    return 0


def output_prefix(path: Path) -> Path:
    """The output prefix a path names: `out/hello` as given, or `out/hello` for a file of it such as
    `out/hello-kernel` or `out/hello-initrd.img` (what a shell completes)."""
    from ..outputs import FORMATS

    for fmt in FORMATS.values():
        for suffix in fmt.suffixes:
            if path.name.endswith(suffix) and path.is_file() and len(path.name) > len(suffix):
                return path.with_name(path.name[: -len(suffix)])
    return path


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="boot kernel+initrd in QEMU with the console here")
    run.add_argument("path", help="output prefix, e.g. out/minimal, or one of its files, e.g. out/minimal-kernel")
    run.add_argument("--mem", default="512M", help="guest memory, with a unit: 512M, 2G (default 512M)")
    run.add_argument("--cpus", type=int, default=1, help="virtual CPUs (default 1)")
    run.add_argument("--timeout", type=float, default=300.0, help="seconds before the guest is stopped")
    run.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    run.add_argument("--networking", choices=runner.NETWORKING, default="user", help="user-mode (default) or none")
    run.add_argument(
        "--publish", action="append", metavar="HOST:GUEST[/udp]", help="forward 127.0.0.1:HOST to the guest's port"
    )
    run.add_argument(
        "--disk", action="append", metavar="PATH[,size=N][,format=F]", help="virtio disk, created when missing"
    )
    run.add_argument("--arch", help="emulate this architecture (default: the kernel's own, e.g. arm64 for an Image)")
    run.set_defaults(func=cmd_run)
