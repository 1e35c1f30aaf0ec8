"""`run`: boot an output in QEMU with the console here."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import bootmode, runner
from .common import Subparsers, err_console


def cmd_run(args: argparse.Namespace) -> int:
    options = runner.RunOptions(
        prefix=Path(args.path),
        mem=args.mem,
        cpus=args.cpus,
        timeout=args.timeout,
        accel=args.accel,
        networking=args.networking,
        publish=tuple(runner.Publish.parse(text) for text in args.publish or ()),
        disks=tuple(runner.Disk.parse(text) for text in args.disk or ()),
        boot=boot_request(args),
    )

    def show(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    result = runner.run(options, on_output=show)
    ended = "halted (QEMU stopped)" if result.halted else "powered off"
    err_console.print(f"guest {ended} after {result.seconds:.1f} s ({result.accel})")
    return 0


def boot_request(args: argparse.Namespace) -> bootmode.BootRequest:
    return bootmode.BootRequest(
        iso=args.iso,
        kernel=args.kernel,
        squashfs=args.squashfs,
        uefi=args.uefi,
        firmware=Path(args.fw) if args.fw else None,
    )


def boot_flags(run: argparse.ArgumentParser) -> None:
    """The boot mode: the artefact decides (as `linuxkit run qemu`); these flags force it."""
    run.add_argument("--iso", action="store_true", help="boot PATH (or PATH.iso) as an ISO")
    run.add_argument("--kernel", action="store_true", help="boot PATH-kernel with PATH-initrd.img")
    run.add_argument(
        "--squashfs", action="store_true", help="boot PATH-kernel with PATH-squashfs.img (or -erofs.img) as root"
    )
    run.add_argument("--uefi", action="store_true", help="boot through UEFI firmware (OVMF) instead of BIOS")
    run.add_argument("--fw", metavar="PATH", help="UEFI firmware to boot with (implies --uefi; default OVMF's)")


def register(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="boot an output in QEMU with the console here")
    run.add_argument("path", help="output prefix (e.g. out/minimal) or a .iso, .img, .raw, .qcow2, .vhd or .vmdk file")
    boot_flags(run)
    run.add_argument("--mem", default="512M")
    run.add_argument("--cpus", type=int, default=1)
    run.add_argument("--timeout", type=float, default=300.0, help="seconds before the guest is stopped")
    run.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    run.add_argument("--networking", choices=runner.NETWORKING, default="user", help="user-mode (default) or none")
    run.add_argument(
        "--publish", action="append", metavar="HOST:GUEST[/udp]", help="forward 127.0.0.1:HOST to the guest's port"
    )
    run.add_argument(
        "--disk", action="append", metavar="PATH[,size=N][,format=F]", help="virtio disk, created when missing"
    )
    run.set_defaults(func=cmd_run)
