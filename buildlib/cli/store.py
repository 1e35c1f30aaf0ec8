"""`cache`: what the store holds; ls, du, gc, rm, export, import."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import cache
from . import jsonout
from .common import Subparsers, err_console, human_size, print_table, store_root, when


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
    report = cache.gc(store_root(args), keep)
    if args.verbose and report.removed:
        print_table(
            ("removed", "size", "last used"), [[r.path, human_size(r.size), when(r.last_used)] for r in report.removed]
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
