"""`run`: boot an output in QEMU with the console here, in the background, or stop one."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..guest.console import ESCAPES, Console
from ..lazy import lazy_module
from . import habits
from .common import Subparsers, err_console, print_table, show_console

if TYPE_CHECKING:  # loaded when `run` runs, not when the parser is made for another command
    from ..guest import bootmode, instance, metadata, roster, runner, timeline
else:
    bootmode, instance, metadata, roster, runner, timeline = (
        lazy_module(name)
        for name in (
            "buildlib.guest.bootmode",
            "buildlib.guest.instance",
            "buildlib.guest.metadata",
            "buildlib.guest.roster",
            "buildlib.guest.runner",
            "buildlib.guest.timeline",
        )
    )

PIPE_TIMEOUT = 300.0
DEFAULT_MEM = "512M"


def cmd_run(args: argparse.Namespace) -> int:
    state = instance.StateDir(Path(args.state).resolve()) if args.state else None
    if args.stop:
        return _stop(state)
    recorded = instance.recall(state) if state else instance.Recorded()
    given = args.path or recorded.prefix
    if given is None:
        raise BadInput("give the output to boot, e.g. `distrokit run out/minimal`")
    prefix = output_prefix(Path(given))
    if args.detached and state is None:
        state = instance.StateDir(Path(f"{prefix}-state").resolve())  # LinuxKit's default state folder
    settings = instance_settings(args, recorded, prefix, state)
    console = _console_mode(args.detached)
    options = _run_options(args, settings, state, console)
    clock = timeline.ConsoleClock() if args.timeline else None
    if clock is not None:
        options = dataclasses.replace(options, extra_cmdline=timeline.CMDLINE_FLAG)
    if state is not None:
        state.create()
        instance.refuse_if_running(state)  # before the record changes under a running instance
        runner.refuse_taken_ports(options)  # and before it records a port another holds
        instance.remember(state, settings)
        roster.enlist(state)
    if console is Console.TERMINAL:
        err_console.print(f"console on this terminal: {ESCAPES}")

    def show(chunk: bytes) -> None:
        if clock is not None:
            clock.feed(chunk)
        show_console(chunk)

    return _report(runner.run(options, on_output=show), console, state, clock)


def instance_settings(
    args: argparse.Namespace, recorded: instance.Recorded, prefix: Path, state: instance.StateDir | None
) -> instance.Recorded:
    """This run's instance: the options given, and for those not given, what the state folder's record
    says. The boot mode, firmware and architecture are the recorded artefact's: another PATH drops them."""
    if recorded.prefix is None or Path(recorded.prefix) != prefix.resolve():
        recorded = dataclasses.replace(recorded, boot=(), firmware=None, arch=None)
    forced = tuple(flag for flag in ("iso", "kernel", "squashfs") if getattr(args, flag))
    mode = forced or tuple(flag for flag in recorded.boot if flag not in ("uefi", "secure-boot"))
    firmware_flags = {"uefi": args.uefi, "secure-boot": args.secure_boot}
    uefi = tuple(flag for flag, given in firmware_flags.items() if given or flag in recorded.boot)
    networking = args.networking or recorded.networking or "user"
    publish = tuple(args.publish) if args.publish is not None else recorded.publish
    if args.networking == "none" and args.publish is None:
        publish = ()  # no network this time: the recorded ports have nothing to forward to
    disks = tuple(args.disk) if args.disk is not None else recorded.disks
    return instance.Recorded(
        prefix=str(prefix.resolve()),
        publish=publish,
        disks=instance.place_disks(disks, state) if state is not None else disks,
        data=args.data is not None or args.data_file is not None or (recorded.data and state is not None),
        boot=(*mode, *uefi),
        firmware=args.fw or recorded.firmware,
        arch=args.arch or recorded.arch,
        mem=args.mem or recorded.mem or DEFAULT_MEM,
        cpus=args.cpus if args.cpus is not None else (recorded.cpus or 1),
        networking=networking,
    )


def _stop(state: instance.StateDir | None) -> int:
    if state is None:
        raise BadInput("--stop needs the instance's state folder: give --state DIR")
    how = "shut down" if instance.stop(state) == "clean" else "QEMU told to quit"
    err_console.print(f"instance in {state.path} stopped ({how})")
    return 0


def _run_options(
    args: argparse.Namespace, settings: instance.Recorded, state: instance.StateDir | None, console: Console
) -> runner.RunOptions:
    timeout = args.timeout if args.timeout is not None else (PIPE_TIMEOUT if console is Console.PIPE else None)
    data = metadata.read_data(args.data, Path(args.data_file) if args.data_file else None)
    reused_iso = state.data_iso if state is not None and settings.data and data is None else None
    assert settings.prefix is not None and settings.mem is not None and settings.cpus is not None
    return runner.RunOptions(
        prefix=Path(settings.prefix),
        mem=settings.mem,
        cpus=settings.cpus,
        timeout=timeout,
        accel=args.accel,
        networking=settings.networking or "user",
        publish=tuple(runner.Publish.parse(text) for text in settings.publish),
        disks=tuple(runner.Disk.parse(text) for text in settings.disks),
        instance=runner.Instance(
            console=console,
            data=data,
            data_iso=reused_iso,
            state=state.path if state else None,
            qemu=args.qemu,
            virtiofs=tuple(Path(folder) for folder in args.virtiofs or ()),
        ),
        boot=bootmode.BootRequest(
            iso="iso" in settings.boot,
            kernel="kernel" in settings.boot,
            squashfs="squashfs" in settings.boot,
            uefi="uefi" in settings.boot,
            secure_boot="secure-boot" in settings.boot,
            firmware=Path(settings.firmware) if settings.firmware else None,
        ),
        arch=settings.arch,
    )


def _report(
    result: runner.RunResult, console: Console, state: instance.StateDir | None, clock: timeline.ConsoleClock | None
) -> int:
    if result.detached:
        assert state is not None
        err_console.print(f"guest running in the background; console in {state.console_log}")
        err_console.print(f"stop it with: distrokit run --state {state.path} --stop")
        return 0
    ended = "halted (QEMU stopped)" if result.halted else "powered off"
    if console is Console.TERMINAL:
        ended = "ended"
    err_console.print(f"guest {ended} after {result.seconds:.1f} s ({result.accel})")
    if clock is not None:
        _print_timeline(clock, result.seconds)
    return 0


def _print_timeline(clock: timeline.ConsoleClock, seconds: float) -> None:
    """The phases on QEMU's clock: the run's own start is a little before QEMU's."""
    lead = max(0.0, (time.monotonic() - clock.started) - seconds)
    lines = [(arrival - lead, line) for arrival, line in clock.lines]
    rows = [(phase.name, f"{phase.start:.2f}", f"{phase.seconds:.2f}") for phase in timeline.phases(lines, seconds)]
    print_table(("phase", "start s", "took s"), rows, right=("start s", "took s"))


PREFIX_FILES = ("-kernel", "-initrd.img", "-cmdline", "-boot-initrd.img")  # media files boot as they are


def output_prefix(path: Path) -> Path:
    """The output prefix a path names: `out/hello` as given, or `out/hello` for a file of it such as
    `out/hello-kernel` or `out/hello-initrd.img` (what a shell completes). A boot medium (an ISO, a
    disk, a squashfs) is kept: bootmode boots it as what it is."""
    for suffix in PREFIX_FILES:
        if path.name.endswith(suffix) and path.is_file() and len(path.name) > len(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def boot_flags(run: argparse.ArgumentParser) -> None:
    """The boot mode: the artefact decides (as `linuxkit run qemu`); these flags force it."""
    run.add_argument("--iso", action="store_true", help="boot PATH (or PATH.iso) as an ISO")
    run.add_argument("--kernel", action="store_true", help="boot PATH-kernel with PATH-initrd.img")
    run.add_argument(
        "--squashfs", action="store_true", help="boot PATH-kernel with PATH-squashfs.img (or -erofs.img) as root"
    )
    run.add_argument(
        "--uefi",
        action="store_true",
        help="boot through UEFI (OVMF) instead of BIOS (arm64 media always boot through AAVMF)",
    )
    run.add_argument(
        "--secure-boot",
        action="store_true",
        help="boot an ISO or a disk with UEFI Secure Boot enforced, Microsoft's keys enrolled (OVMF's secboot "
        "firmware on q35 with SMM): media from `build --secure-boot` boot, unsigned loaders or kernels are refused",
    )
    run.add_argument(
        "--fw", metavar="PATH", help="UEFI firmware to boot with (implies --uefi; default OVMF's, AAVMF's on arm64)"
    )


def _console_mode(detached: bool) -> Console:
    if detached:
        return Console.DETACHED
    if sys.stdin.isatty() and sys.stdout.isatty():
        return Console.TERMINAL
    return Console.PIPE


def register(sub: Subparsers) -> None:
    run = sub.add_parser(
        "run",
        help="boot an output in QEMU with the console here",
        description="Boot an output in QEMU. On a terminal the console is a serial line: every key, "
        f"Ctrl-C too, goes to the guest; {ESCAPES}.",
    )
    run.add_argument(
        "path",
        nargs="?",
        help="output prefix (out/minimal), one of its files (out/minimal-kernel), or a .iso, .img, .raw, .qcow2, "
        ".vhd or .vmdk file; with --state, the last one run (LinuxKit's `run qemu PATH` works too)",
    )
    boot_flags(run)
    _machine_flags(run)
    _instance_flags(run)
    run.add_argument("--arch", help="emulate this architecture (default: the kernel's own, e.g. arm64 for an Image)")
    run.set_defaults(func=cmd_run)


def _machine_flags(run: argparse.ArgumentParser) -> None:
    """The virtual machine: memory, CPUs, accelerator, network, disks."""
    run.add_argument(
        "--mem",
        type=habits.mebibytes,
        help="guest memory, with a unit: 512M, 2G (default 512M); a bare number is MiB, as in LinuxKit",
    )
    run.add_argument("--cpus", type=int, help="virtual CPUs (default 1)")
    run.add_argument(
        "--timeout",
        type=float,
        help=f"seconds before the guest is stopped (default {PIPE_TIMEOUT:.0f} when the console is not a "
        "terminal; none on a terminal or detached)",
    )
    run.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto", help="accelerator (default auto)")
    run.add_argument(
        "--networking", metavar="{user,none}", help="user-mode (default) or none"
    )  # checked by the runner, which is not loaded to make the parser
    run.add_argument(
        "--publish", action="append", metavar="HOST:GUEST[/udp]", help="forward 127.0.0.1:HOST to the guest's port"
    )
    run.add_argument(
        "--disk",
        action="append",
        metavar="[PATH,]size=N[,format=F]",
        help="virtio disk, created when missing (with --state the file may be left out: diskN in the state folder)",
    )


def _instance_flags(run: argparse.ArgumentParser) -> None:
    """The instance: its data, its state folder, how it runs and what it shares."""
    data = run.add_mutually_exclusive_group()
    data.add_argument("--data", metavar="STRING", help="instance data for the metadata package, as a config ISO")
    data.add_argument("--data-file", metavar="PATH", help="instance data from a file (e.g. LinuxKit's JSON)")
    run.add_argument(
        "--state",
        metavar="DIR",
        help="the instance's folder: disks, config ISO, console log, pid and ports, kept between runs",
    )
    run.add_argument(
        "--detached",
        action="store_true",
        help="boot in the background, console to the state folder (default state: PATH-state)",
    )
    run.add_argument("--stop", action="store_true", help="shut down the instance running in --state DIR")
    run.add_argument(
        "--qemu",
        metavar="PATH",
        help="the QEMU binary to run (default: qemu-system-x86_64, or qemu-system-aarch64 for arm64)",
    )
    run.add_argument(
        "--virtiofs",
        action="append",
        metavar="DIR",
        help="share a host folder over virtio-fs (needs virtiofsd); the guest mounts tag virtiofs0, 1, ...",
    )
    run.add_argument(
        "--timeline", action="store_true", help="print where the boot went: phases from the console's timestamps"
    )
