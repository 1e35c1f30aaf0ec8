"""The `distrokit` command: argument parsing and printing. The only place that prints or exits."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from . import __version__, components, images, runner, sbom, tasks
from .errors import DistrokitError
from .refs import ImageRef
from .spec import load_spec

DEFAULT_CACHE = "cache"
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _cache(args: argparse.Namespace) -> Path:
    return Path(args.cache or os.environ.get("DISTROKIT_CACHE") or DEFAULT_CACHE).resolve()


def _component_root() -> Path:
    return Path(os.environ.get("DISTROKIT_COMPONENTS", "components")).resolve()


def cmd_build(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    name = args.name or Path(specs[0]).stem
    options = tasks.BuildOptions(
        cache=_cache(args),
        out_dir=Path(args.dir).resolve(),
        name=name,
        formats=tuple(args.format or ["kernel+initrd"]),
        pull=args.pull,
    )
    if args.dry_run:
        spec = load_spec(specs, resolve_pkg=components.PkgResolver())
        print(spec.to_yaml(), end="")
        return 0
    report = tasks.build_spec(
        specs, options, _component_root(), jobs=args.jobs, outstream=None if args.quiet else sys.stderr
    )
    if not args.quiet:
        err_console.print(
            f"built {name}: {len(report.executed)} tasks ran, {len(report.up_to_date)} up to date; "
            f"outputs in {options.out_dir}"
        )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec([Path(p) for p in args.spec], resolve_pkg=components.PkgResolver())
    for warning in spec.warnings:
        err_console.print(f"warning: {warning}")
    err_console.print(f"{', '.join(args.spec)}: valid")
    return 0


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
    )

    def show(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    result = runner.run(options, on_output=show)
    ended = "halted (QEMU stopped)" if result.halted else "powered off"
    err_console.print(f"guest {ended} after {result.seconds:.1f} s ({result.accel})")
    return 0


def cmd_sbom(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    options = tasks.BuildOptions(cache=_cache(args), out_dir=Path("."), name=Path(specs[0]).stem)
    spec, loaded = tasks.ensure_images(specs, options, _component_root())
    sys.stdout.buffer.write(sbom.render(spec.images(), loaded))
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    store = images.Store(_cache(args))
    for text in args.ref:
        ref = ImageRef.parse(text)
        digest = images.pull(store, ref)
        err_console.print(f"{ref.familiar()} {digest}")
    return 0


def cmd_pkg_build(args: argparse.Namespace) -> int:
    store = images.Store(_cache(args))
    for folder in args.folder:
        recipe = components.load_recipe(Path(folder))
        packages = components.pinned_packages(store.root, recipe, refresh=args.update)
        digest = components.build(store, recipe, packages)
        err_console.print(f"{recipe.ref.familiar()} {digest}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="distrokit", description="Build and boot minimal Linux systems from YAML specs.")
    top.add_argument("--version", action="version", version=f"distrokit {__version__}")
    top.add_argument("--cache", help="content-addressed store (env DISTROKIT_CACHE, default ./cache)")
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="command", required=True)

    build = sub.add_parser("build", help="build a spec into boot media")
    build.add_argument("spec", nargs="+", help="spec files, merged in order")
    build.add_argument("--dir", default=".", help="output folder (default: current folder)")
    build.add_argument("--name", help="output name (default: the first spec's base name)")
    build.add_argument("-f", "--format", action="append", help="output format (default kernel+initrd)")
    build.add_argument("--pull", action="store_true", help="pull images even when they are in the store")
    build.add_argument("-j", "--jobs", type=int, default=2, help="tasks run at once (default 2)")
    build.add_argument("--dry-run", action="store_true", help="print the merged, normalised spec and stop")
    build.add_argument("-q", "--quiet", action="store_true")
    build.set_defaults(func=cmd_build)

    validate = sub.add_parser("validate", help="check specs without building or pulling")
    validate.add_argument("spec", nargs="+")
    validate.set_defaults(func=cmd_validate)

    run = sub.add_parser("run", help="boot kernel+initrd in QEMU with the console here")
    run.add_argument("path", help="output prefix, e.g. out/minimal")
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

    sbom_cmd = sub.add_parser("sbom", help="print the SPDX 2.3 document of what a spec's image holds")
    sbom_cmd.add_argument("spec", nargs="+", help="spec files, merged in order")
    sbom_cmd.set_defaults(func=cmd_sbom)

    pull = sub.add_parser("pull", help="pull images into the store")
    pull.add_argument("ref", nargs="+")
    pull.set_defaults(func=cmd_pull)

    pkg = sub.add_parser("pkg", help="component images").add_subparsers(dest="pkg_command", required=True)
    pkg_build = pkg.add_parser("build", help="build component images from Debian packages")
    pkg_build.add_argument("folder", nargs="+")
    pkg_build.add_argument("--update", action="store_true", help="ask apt for newer packages than the pinned ones")
    pkg_build.set_defaults(func=cmd_pkg_build)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except DistrokitError as exc:
        if args.debug:
            raise
        err_console.print(f"distrokit: error: {exc}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("distrokit: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
