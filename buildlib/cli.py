"""The `distrokit` command: argument parsing and printing. The only place that prints or exits."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import __version__, cache, components, images, runner, tasks
from .errors import DistrokitError
from .fsutil import store_lock
from .refs import ImageRef
from .spec import load_spec
from .tasks.explain import UP_TO_DATE, explain

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
    if args.explain:
        _print_explanations(tasks.plan_build(specs, options, _component_root()))
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


def cmd_explain(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    options = tasks.BuildOptions(
        cache=_cache(args),
        out_dir=Path(args.dir).resolve(),
        name=args.name or specs[0].stem,
        formats=tuple(args.format or ["kernel+initrd"]),
    )
    _print_explanations(tasks.plan_build(specs, options, _component_root()))
    return 0


def _print_explanations(plan: tasks.Plan) -> None:
    table = Table("task", "will", "why", box=None, show_header=True, header_style="bold")
    for item in explain(plan):
        if item.status != UP_TO_DATE:
            table.add_row(item.task, item.status, "\n".join(item.reasons))
    if table.row_count:
        Console(highlight=False).print(table)
    else:
        print("everything is up to date")


def cmd_validate(args: argparse.Namespace) -> int:
    spec = load_spec([Path(p) for p in args.spec], resolve_pkg=components.PkgResolver())
    for warning in spec.warnings:
        err_console.print(f"warning: {warning}")
    err_console.print(f"{', '.join(args.spec)}: valid")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    options = runner.RunOptions(
        prefix=Path(args.path), mem=args.mem, cpus=args.cpus, timeout=args.timeout, accel=args.accel
    )

    def show(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    result = runner.run(options, on_output=show)
    err_console.print(f"guest powered off after {result.seconds:.1f} s ({result.accel})")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    store = images.Store(_cache(args))
    for text in args.ref:
        ref = ImageRef.parse(text)
        with store_lock(store.root):
            digest = images.pull(store, ref)
        err_console.print(f"{ref.familiar()} {digest}")
    return 0


def cmd_pkg_build(args: argparse.Namespace) -> int:
    store = images.Store(_cache(args))
    for folder in args.folder:
        recipe = components.load_recipe(Path(folder))
        with store_lock(store.root):
            packages = components.pinned_packages(store.root, recipe, refresh=args.update)
            digest = components.build(store, recipe, packages)
        err_console.print(f"{recipe.ref.familiar()} {digest}")
    return 0


# cache ----------------------------------------------------------------------------------------
def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, unit = float(size) / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"


def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> None:
    """A rich table on a terminal; tab-separated lines with a header otherwise (for scripts)."""
    console = Console(highlight=False)
    if not console.is_terminal:
        for row in [list(columns), *rows]:
            print("\t".join(row))
        return
    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*row)
    console.print(table)


def cmd_cache_ls(args: argparse.Namespace) -> int:
    rows = [
        [
            row.name + ("" if row.complete else " (incomplete)"),
            row.digest[:19],
            human_size(row.size),
            _when(row.last_used),
            ", ".join(row.used_by) or "-",
        ]
        for row in cache.ls(_cache(args))
    ]
    _print_table(("image", "digest", "size", "last used", "used by"), rows, right=("size",))
    return 0


def cmd_cache_du(args: argparse.Namespace) -> int:
    usage = cache.du(_cache(args))
    rows = [[area.area, str(area.files), human_size(area.size)] for area in usage.areas]
    rows.append(["total", str(sum(area.files for area in usage.areas)), human_size(usage.total)])
    _print_table(("area", "files", "size"), rows, right=("files", "size"))
    return 0


def cmd_cache_gc(args: argparse.Namespace) -> int:
    keep = cache.parse_size(args.keep) if args.keep is not None else None
    report = cache.gc(_cache(args), keep)
    if args.verbose and report.removed:
        _print_table(
            ("removed", "size", "last used"), [[r.path, human_size(r.size), _when(r.last_used)] for r in report.removed]
        )
    for spec in report.stale_records:
        err_console.print(f"forgot spec {spec}: none of its files exist any more")
    err_console.print(
        f"removed {len(report.removed)} entries, freed {human_size(report.freed)}; "
        f"the store is {human_size(report.size_after)}"
        + (f" (asked for at most {human_size(keep)})" if keep is not None and report.size_after > keep else "")
    )
    return 0


def cmd_cache_rm(args: argparse.Namespace) -> int:
    root = _cache(args)
    for text in args.ref:
        digest = cache.rm(root, text)
        err_console.print(
            f"removed the name {text} ({digest}); `distrokit cache gc` frees its blobs unless a spec uses them"
        )
    return 0


def cmd_cache_export(args: argparse.Namespace) -> int:
    digest = cache.export_image(_cache(args), args.ref, Path(args.file))
    err_console.print(f"wrote {args.ref} ({digest}) to {args.file}")
    return 0


def cmd_cache_import(args: argparse.Namespace) -> int:
    ref, digest = cache.import_image(_cache(args), Path(args.file), args.name)
    err_console.print(f"{ref.familiar()} {digest}")
    return 0


def _cache_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("cache", help="what the store holds; gc, rm, export, import")
    commands = group.add_subparsers(dest="cache_command", required=True)
    commands.add_parser("ls", help="named images: size, last use, the specs that use them").set_defaults(
        func=cmd_cache_ls
    )
    commands.add_parser("du", help="bytes per area of the store").set_defaults(func=cmd_cache_du)
    gc = commands.add_parser("gc", help="remove what no spec's last build and no name refers to")
    gc.add_argument(
        "--keep", metavar="SIZE", help="remove least recently used first, only until the store is SIZE (e.g. 2G)"
    )
    gc.add_argument("-v", "--verbose", action="store_true", help="list what was removed")
    gc.set_defaults(func=cmd_cache_gc)
    rm = commands.add_parser("rm", help="drop image names (their blobs go at the next gc)")
    rm.add_argument("ref", nargs="+")
    rm.set_defaults(func=cmd_cache_rm)
    export = commands.add_parser("export", help="write a stored image to an oci-archive file")
    export.add_argument("ref")
    export.add_argument("file")
    export.set_defaults(func=cmd_cache_export)
    imp = commands.add_parser("import", help="store the image of an oci-archive or docker-archive file")
    imp.add_argument("file")
    imp.add_argument("name", nargs="?", help="the name to give it (default: the name the archive holds)")
    imp.set_defaults(func=cmd_cache_import)


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
    build.add_argument("--explain", action="store_true", help="say which tasks will run and why, then build")
    build.add_argument("-q", "--quiet", action="store_true")
    build.set_defaults(func=cmd_build)

    explain_cmd = sub.add_parser("explain", help="say which tasks a build would run and why, building nothing")
    explain_cmd.add_argument("spec", nargs="+")
    explain_cmd.add_argument("--dir", default=".")
    explain_cmd.add_argument("--name")
    explain_cmd.add_argument("-f", "--format", action="append")
    explain_cmd.set_defaults(func=cmd_explain)

    validate = sub.add_parser("validate", help="check specs without building or pulling")
    validate.add_argument("spec", nargs="+")
    validate.set_defaults(func=cmd_validate)

    run = sub.add_parser("run", help="boot kernel+initrd in QEMU with the console here")
    run.add_argument("path", help="output prefix, e.g. out/minimal")
    run.add_argument("--mem", default="512M")
    run.add_argument("--cpus", type=int, default=1)
    run.add_argument("--timeout", type=float, default=300.0, help="seconds before the guest is stopped")
    run.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    run.set_defaults(func=cmd_run)

    pull = sub.add_parser("pull", help="pull images into the store")
    pull.add_argument("ref", nargs="+")
    pull.set_defaults(func=cmd_pull)

    pkg = sub.add_parser("pkg", help="component images").add_subparsers(dest="pkg_command", required=True)
    pkg_build = pkg.add_parser("build", help="build component images from Debian packages")
    pkg_build.add_argument("folder", nargs="+")
    pkg_build.add_argument("--update", action="store_true", help="ask apt for newer packages than the pinned ones")
    pkg_build.set_defaults(func=cmd_pkg_build)
    _cache_parser(sub)
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
