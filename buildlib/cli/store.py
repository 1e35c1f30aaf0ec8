"""`cache`: what the store holds; ls, du, gc, rm, export, import."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .. import arches
from ..errors import BadInput
from ..lazy import lazy_module
from . import jsonout
from .common import Subparsers, component_root, err_console, human_size, print_table, store_root, when

if TYPE_CHECKING:
    from ..debian import components, recipes
    from ..upkeep import cache
else:
    cache, components = lazy_module("buildlib.upkeep.cache"), lazy_module("buildlib.debian.components")
    recipes = lazy_module("buildlib.debian.recipes")


def cmd_cache_ls(args: argparse.Namespace) -> int:
    if jsonout.wanted(args):
        jsonout.emit("cache ls", jsonout.image_rows(cache.ls(store_root(args))))
        return 0
    rows = [
        [
            row.name + ("" if row.complete else " (incomplete)"),
            row.digest[:19],
            human_size(row.size),
            when(row.last_used),
            ", ".join(row.used_by) or "-",
        ]
        for row in cache.ls(store_root(args))
    ]
    print_table(("image", "digest", "size", "last used", "used by"), rows, right=("size",))
    return 0


def cmd_cache_du(args: argparse.Namespace) -> int:
    usage = cache.du(store_root(args))
    if jsonout.wanted(args):
        jsonout.emit("cache du", jsonout.disk_usage(usage))
        return 0
    rows = [[area.area, str(area.files), human_size(area.size)] for area in usage.areas]
    rows.append(["total", str(sum(area.files for area in usage.areas)), human_size(usage.total)])
    print_table(("area", "files", "size"), rows, right=("files", "size"))
    return 0


def cmd_cache_gc(args: argparse.Namespace) -> int:
    keep = cache.parse_size(args.keep) if args.keep is not None else None
    root = store_root(args)
    report = cache.gc(root, keep, _existing_recipes(component_root(args)))
    if args.verbose and report.removed:
        print_table(
            ("removed", "size", "last used"), [[r.path, human_size(r.size), when(r.last_used)] for r in report.removed]
        )
    for spec in report.stale_records:
        err_console.print(f"forgot spec {spec}: none of its files exist any more")
    _report_gc(root, report, args.keep)
    return 0


def _existing_recipes(folder: Path) -> set[str] | None:
    """`NAME-KEY` of every recipe in the project's components folder and of the built-in ones (their
    package pins stay); None without a project folder (then no pin is known to be stale)."""
    if not folder.is_dir():
        return None
    pin_names: set[str] = set()
    found = [*folder.glob(f"*/{recipes.RECIPE}"), *recipes.builtin_components().glob(f"*/{recipes.RECIPE}")]
    for recipe_file in sorted(found):
        try:
            recipe = recipes.load_recipe(recipe_file.parent)
        except BadInput:
            continue  # a broken recipe keeps its pins: it may be fixed
        pin_names.update(f"{recipe.name}-{recipe.key}{arches.arch_suffix(arch)}" for arch in arches.ARCHITECTURES)
    return pin_names


def in_unit(count: int, typed: str | None) -> str:
    """`count` bytes in the unit the user typed (2G: GiB, 500M: MiB; parse_size counts in 1024s)."""
    unit = (typed or "").strip().rstrip("bB").rstrip("iI")[-1:].upper()
    if unit not in ("K", "M", "G", "T"):
        return human_size(count) if typed is None else f"{count} bytes"
    value = count / 1024 ** ("KMGT".index(unit) + 1)
    return f"{value:.2f} {unit}iB"


def _report_gc(root: Path, report: cache.GcReport, typed: str | None) -> None:
    keep = report.keep
    err_console.print(
        f"removed {len(report.removed)} entries, freed {in_unit(report.freed, typed)}; "
        f"the store is {in_unit(report.size_after, typed)}"
        + (f" (asked for at most {in_unit(keep, typed)})" if keep is not None and report.size_after > keep else "")
    )
    if keep is None or report.size_after <= keep:
        return
    err_console.print("what holds the rest (shared bytes count for each):", markup=False)
    for holder in cache.holders(root):
        err_console.print(f"  {in_unit(holder.size, typed):>12}  {holder.what}", markup=False)


def cmd_cache_rm(args: argparse.Namespace) -> int:
    root = store_root(args)
    for text in args.ref:
        digest = cache.rm(root, text)
        err_console.print(
            f"removed the name {text} ({digest}); `distrokit cache gc` frees its blobs unless a spec uses them"
        )
    return 0


def cmd_cache_export(args: argparse.Namespace) -> int:
    digest = cache.export_image(store_root(args), args.ref, Path(args.file))
    err_console.print(f"wrote {args.ref} ({digest}) to {args.file}")
    return 0


def cmd_cache_import(args: argparse.Namespace) -> int:
    ref, digest = cache.import_image(store_root(args), Path(args.file), args.name)
    err_console.print(f"{ref.familiar()} {digest}")
    return 0


def cmd_cache_check(args: argparse.Namespace) -> int:
    from ..upkeep.check import check

    report = check(store_root(args), repair=args.repair)
    for entry in report.bad:
        err_console.print(f"bad: {entry.path}: {entry.problem}", markup=False)
    for path in report.removed:
        err_console.print(f"removed {path}", markup=False)
    if report.bad and not args.repair:
        err_console.print(f"{len(report.bad)} of {report.checked} entries are bad: `distrokit cache check --repair`")
        return 1
    err_console.print(f"checked {report.checked} entries: {len(report.bad)} bad, {len(report.removed)} removed")
    return 0


def register(sub: Subparsers) -> None:
    group = sub.add_parser("cache", help="what the store holds; gc, rm, export, import")
    commands = group.add_subparsers(dest="cache_command", required=True)
    ls = commands.add_parser("ls", help="named images: size, last use, the specs that use them")
    jsonout.add_flag(ls)
    ls.set_defaults(func=cmd_cache_ls)
    du = commands.add_parser("du", help="bytes per area of the store")
    jsonout.add_flag(du)
    du.set_defaults(func=cmd_cache_du)
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
    check = commands.add_parser("check", help="verify every store entry against its key")
    check.add_argument("--repair", action="store_true", help="remove bad entries; the next build makes them again")
    check.set_defaults(func=cmd_cache_check)
