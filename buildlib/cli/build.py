"""`build`, `explain`, `validate` and `sbom`: the commands that read specs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .. import arches
from ..errors import BadInput, DistrokitError
from ..lazy import lazy_module
from ..release import lockpath
from ..store import stamp as build_stamp
from . import habits, jsonout
from .common import (
    Subparsers,
    apply_layer_limit,
    component_root,
    err_console,
    layer_limit_flag,
    network_options,
    out_console,
    read_lock,
    signer_options,
    signing_flags,
    store_root,
    transfer_flags,
)
from .watch import BuildView

if TYPE_CHECKING:  # the modules below load when a command runs, not when the parser is made
    from .. import outputs, tasks
    from ..debian import recipes
    from ..outputs import compress, preflight
    from ..release import provenance
    from ..rootfs import sbom
    from ..spec import model as speclib
    from ..tasks import attest, explain
    from ..tasks import shared as shared_cache
    from ..tasks import stamp as tasks_stamp
    from ..tasks.shared import SharedCache
else:
    preflight, sbom, tasks, speclib = (
        lazy_module(name)
        for name in (
            "buildlib.outputs.preflight",
            "buildlib.rootfs.sbom",
            "buildlib.tasks",
            "buildlib.spec.model",
        )
    )
    compress, explain = lazy_module("buildlib.outputs.compress"), lazy_module("buildlib.tasks.explain")
    outputs = lazy_module("buildlib.outputs")
    tasks_stamp = lazy_module("buildlib.tasks.stamp")
    shared_cache = lazy_module("buildlib.tasks.shared")
    recipes = lazy_module("buildlib.debian.recipes")
    attest, provenance = lazy_module("buildlib.tasks.attest"), lazy_module("buildlib.release.provenance")


def _build_options(args: argparse.Namespace) -> tasks.BuildOptions:
    """The options `build` and `explain` share: explain must key tasks exactly as the build would."""
    pins, lock_file = read_lock(args.lock, [Path(p) for p in args.spec])
    return tasks.BuildOptions(
        cache=store_root(args),
        out_dir=Path(args.dir).resolve(),
        name=_name(args),
        formats=outputs.parse_formats(args.format),
        size=outputs.parse_size(args.size),
        pull=args.pull,
        compression=compress.Compression.parse(args.compression),
        arch=arches.normalise(args.arch),
        network=network_options(args),
        lock=pins,
        lock_file=lock_file,
        locked=args.locked,
        sbom=not args.no_sbom,
        decompress_kernel=args.decompress_kernel,
        secure_boot=args.secure_boot,
        audit=getattr(args, "audit", False),  # `explain` has no --audit
        input_tar=Path(args.input_tar) if getattr(args, "input_tar", None) else None,
    )


def _name(args: argparse.Namespace) -> str:
    """The output name: --name, or the spec's base name with the architecture beyond amd64
    (out/minimal-arm64-kernel), so one --dir holds both and switching --arch finds the other's still up to date."""
    return args.name or Path(args.spec[0]).stem + arches.arch_suffix(arches.normalise(args.arch))


def _stamp_context(args: argparse.Namespace) -> dict[str, object]:
    """What a build depends on besides its files (see build_stamp), from the arguments alone."""
    return build_stamp.context(
        {
            "specs": [str(Path(p).resolve()) for p in args.spec],
            "name": _name(args),
            "dir": str(Path(args.dir).resolve()),
            "formats": args.format or [],  # as given: the format registry loads every writer module
            "compression": args.compression,
            "arch": args.arch,
            "components": str(component_root(args)),
            "cwd": os.getcwd(),  # relative `files` sources are read from here
            "lock": args.lock or "",
            "locked": args.locked,
            "source_date_epoch": os.environ.get("SOURCE_DATE_EPOCH", ""),
            "no_sbom": args.no_sbom,
            "decompress_kernel": args.decompress_kernel,
            "secure_boot": args.secure_boot,
        }
    )


def _lock_path(args: argparse.Namespace) -> str:
    """The lock file the build follows (or would, once it exists): SPEC.lock beside the first spec."""
    return str(Path(args.lock).resolve()) if args.lock else str(lockpath.path_for(Path(args.spec[0]).resolve()))


def _stamped(args: argparse.Namespace) -> dict[str, object] | None:
    """The context a build's stamp records (see _stamp_context), or None for a build that writes none
    (a spec from stdin has no file to watch)."""
    if args.pull or args.explain or args.dry_run or args.input_tar or habits.STDIN_SPEC in args.spec:
        return None
    return _stamp_context(args)


def _nothing_to_do(args: argparse.Namespace, stamp: dict[str, object] | None) -> bool:
    """A build whose stamp matches: say so without loading doit, the spec parser or the store."""
    if stamp is None or args.audit:
        return False
    # these print or write more than the stamp knows of
    if jsonout.wanted(args) or args.output_file is not None or args.sbom_output:
        return False
    if args.provenance:  # the statement is written from the build's plan, every time
        return False
    if os.environ.get("DISTROKIT_AUDIT"):  # imported only then: this check must stay light
        from ..tasks.audit import audit_enabled

        if audit_enabled():
            return False  # an audit recomputes what is up to date: it needs doit
    name = _name(args)
    if not build_stamp.is_current(store_root(args), name, stamp):
        return False
    if not args.quiet:
        where = Path(args.dir).resolve()
        err_console.print(f"built {name}: nothing changed, every task up to date; outputs in {where}")
    return True


def cmd_build(args: argparse.Namespace) -> int:
    apply_layer_limit(args)
    if args.provenance:
        _check_provenance_args(args)
    for note in habits.check_build_args(args):
        err_console.print(f"note: {note}", markup=False)
    stamp = _stamped(args)  # once: the code's part of it stats every module of distrokit
    if _nothing_to_do(args, stamp):
        return 0
    specs = [Path(p) for p in args.spec]
    options = _build_options(args)
    if args.input_tar:
        habits.check_input_tar(args.input_tar, _output_paths(args, options))
    if args.output_file is not None:
        options = dataclasses.replace(options, out_dir=habits.output_folder(options.cache, options.name))
    shared = _shared_cache(args, options)
    options = dataclasses.replace(options, shared=shared)
    explained = None
    if args.explain:
        plan = tasks.plan_build(specs, options, component_root(args))
        if jsonout.wanted(args):
            explained = jsonout.explanations(explain.explain(plan))
        else:
            _print_explanations(plan)
    if args.dry_run:
        spec = speclib.load_spec(specs, resolve_pkg=recipes.PkgResolver(options.arch, component_root(args)))
        if jsonout.wanted(args):
            jsonout.emit("build", {"name": options.name, "spec": spec.to_dict()})
        else:
            print(spec.to_yaml(), end="")
        return 0
    build_stamp.forget(options.cache, options.name)
    try:
        report, plan = _watched_build(specs, options, args)
    finally:
        _print_warnings(shared)
    if shared is not None:
        report = dataclasses.replace(report, fetched=tuple(shared.fetched))
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", markup=False)
    if stamp is not None and not report.warnings:  # a build with warnings says them again next time
        watched = [*tasks_stamp.watched_paths(plan), _lock_path(args)]
        with contextlib.suppress(DistrokitError, OSError):  # without a stamp the next build only takes longer
            build_stamp.write(options.cache, options.name, stamp, watched)
    if args.provenance:
        lock_file = Path(_lock_path(args))
        written = attest.write_provenance(
            plan, specs, options, lock_file if lock_file.is_file() else None, Path(args.provenance)
        )
        if not args.quiet:
            err_console.print(f"provenance signed in {written}", markup=False)
    if args.output_file is not None:
        habits.deliver(args, options.out_dir, options.name)
    if args.sbom_output:
        from ..fsutil import write_bytes_atomic

        spec, loaded = tasks.ensure_images(specs, options, component_root(args))
        write_bytes_atomic(Path(args.sbom_output), sbom.render(spec.images(), loaded, sbom.spec_name(spec)))
    _report_build(args, options, report, explained)
    return 0


# the variables store.remotecache reads (FROM_ENV, TO_ENV): named here so that a build without a shared
# cache decides so without loading the shared cache's modules and signing's
SHARED_CACHE_ENV = ("DISTROKIT_CACHE_FROM", "DISTROKIT_CACHE_TO")


def _shared_cache(args: argparse.Namespace, options: tasks.BuildOptions) -> SharedCache | None:
    """--cache-from and --cache-to, with --sign-by for what is pushed: its key checked before anything builds."""
    signing = (args.sign_by, args.sign_by_sigstore, args.sign_passphrase_file)
    if not (args.cache_from or args.cache_to or any(signing) or any(map(os.environ.get, SHARED_CACHE_ENV))):
        return None
    signer = signer_options(args)
    shared = shared_cache.SharedCache.from_flags(
        args.cache_from or (), args.cache_to or (), options.network, signer=signer
    )
    if shared is not None:
        shared.check_signer(options.cache)
    return shared


def _output_paths(args: argparse.Namespace, options: tasks.BuildOptions) -> list[Path]:
    """The files this build writes for the user: -o FILE, or every format's files in --dir."""
    if args.output_file is not None:
        return [Path(args.output_file)] if args.output_file != "-" else []
    prefix = options.out_dir / options.name
    return [path for name in options.formats for path in outputs.get_format(name).targets(prefix)]


def _check_provenance_args(args: argparse.Namespace) -> None:
    """Before anything is built: a key that signs, and spec files to name."""
    if habits.STDIN_SPEC in args.spec:
        raise BadInput("--provenance names the spec files by their digests: give the spec as a file, not -")
    provenance.check_signing_key(Path(args.provenance))


def _report_build(
    args: argparse.Namespace, options: tasks.BuildOptions, report: tasks.BuildReport, explained: object
) -> None:
    if jsonout.wanted(args):
        warnings = [*report.warnings, *(options.shared.warnings if options.shared else [])]
        document = jsonout.build(options.name, options.out_dir, options.formats, report, warnings)
        jsonout.emit("build", {**document, **({"explain": explained} if explained else {})})
    if not args.quiet:
        fetched = f", {len(report.fetched)} of them fetched from a shared cache" if report.fetched else ""
        where = args.output_file if args.output_file not in (None, "-") else options.out_dir
        err_console.print(
            f"built {options.name}: {len(report.executed)} tasks ran{fetched}, {len(report.up_to_date)} up to date; "
            f"outputs in {where}"
            if args.output_file != "-"
            else f"built {options.name} to stdout"
        )


def _print_warnings(shared: SharedCache | None) -> None:
    """After the build: doit captures what its actions print, so the shared cache's warnings wait until now."""
    for message in shared.warnings if shared else ():
        err_console.print(f"warning: {message}", markup=False)


def _watched_build(
    specs: list[Path], options: tasks.BuildOptions, args: argparse.Namespace
) -> tuple[tasks.BuildReport, tasks.Plan]:
    """The build with its live view (a terminal), plain lines (a pipe) or nothing (--quiet)."""
    with BuildView(sys.stderr, quiet=args.quiet) as view:
        options = dataclasses.replace(options, transfer_listener=view.transfer)
        # doit's own failure report goes to stderr only with --debug: otherwise the CLI says the error once
        outstream = sys.stderr if args.debug else None
        plan = tasks.plan_build(specs, options, component_root(args))
        report = tasks.run_plan(plan, tasks.jobs_args(args.jobs), outstream, view.task, args.debug)
    view.summary()
    return report, plan


def cmd_explain(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    plan = tasks.plan_build(specs, _build_options(args), component_root(args))
    if jsonout.wanted(args):
        jsonout.emit("explain", jsonout.explanations(explain.explain(plan)))
    else:
        _print_explanations(plan)
    return 0


def _print_explanations(plan: tasks.Plan) -> None:
    """A table on a terminal; piped, one `TASK: WILL: REASON` line per reason, task names never cut."""
    items = [item for item in explain.explain(plan) if item.status != explain.UP_TO_DATE]
    if not items:
        print("everything is up to date")
        return
    if not out_console.is_terminal:
        for item in items:
            for reason in item.reasons:
                print(f"{item.task}: {item.status}: {reason}")
        return
    from rich.table import Table

    table = Table("task", "will", "why", box=None, show_header=True, header_style="bold")
    for item in items:
        table.add_row(item.task, item.status, "\n".join(item.reasons))
    out_console.print(table)


def cmd_graph(args: argparse.Namespace) -> int:
    """The task graph as DOT on stdout or in FILE; FILE.svg is drawn with graphviz's `dot` when installed."""
    from ..tasks.graph import to_dot

    text = to_dot(tasks.plan_build([Path(p) for p in args.spec], _build_options(args), component_root(args)))
    if args.output is None:
        print(text, end="")
        return 0
    target = Path(args.output)
    data = text.encode()
    if target.suffix == ".svg":
        data = _svg(text)
    from ..fsutil import write_bytes_atomic

    write_bytes_atomic(target, data)
    err_console.print(f"wrote the task graph to {target}")
    return 0


def _svg(dot_text: str) -> bytes:
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise BadInput("drawing SVG needs graphviz (`apt-get install graphviz`); or write DOT: -o FILE.dot")
    return subprocess.run([dot, "-Tsvg"], input=dot_text.encode(), capture_output=True, check=True).stdout


def cmd_validate(args: argparse.Namespace) -> int:
    resolver = recipes.PkgResolver(components=component_root(args))
    spec = speclib.load_spec([Path(p) for p in args.spec], resolve_pkg=resolver)
    preflight.check_buildable(spec, outputs.parse_formats(args.format))
    for warning in spec.warnings:
        err_console.print(f"warning: {warning}")
    origins = {ref: resolver.origin(ref) for ref in spec.images()}
    if jsonout.wanted(args):
        warnings = [str(w) for w in spec.warnings]
        jsonout.emit("validate", {"specs": list(args.spec), "valid": True, "warnings": warnings, "images": origins})
    for ref, origin in origins.items():
        err_console.print(f"  {ref}: {origin}", markup=False)
    err_console.print(f"{', '.join(args.spec)}: valid")
    return 0


def cmd_sbom(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    pins, lock_file = read_lock(None, specs)  # the SBOM describes what a build following the lock holds
    options = tasks.BuildOptions(
        cache=store_root(args),
        out_dir=Path("."),
        name=Path(specs[0]).stem,
        formats=(),
        pull=args.pull,
        arch=arches.normalise(args.arch),  # `aarch64` and `linux/arm64` are arm64, as for build
        network=network_options(args),
        lock=pins,
        lock_file=lock_file,
    )
    spec, loaded = tasks.ensure_images(specs, options, component_root(args))
    sys.stdout.buffer.write(sbom.render(spec.images(), loaded, sbom.spec_name(spec)))
    return 0


def _pull_flags(command: argparse.ArgumentParser) -> None:
    """What every command that may pull a spec's images takes: the specs, --pull, --arch and the transfer flags."""
    command.add_argument("spec", nargs="+", help="spec files, merged in order")
    command.add_argument("--pull", action="store_true", help="pull images even when they are in the store")
    command.add_argument("--arch", default="amd64", help="platform to take from multi-platform images (default amd64)")
    transfer_flags(command)


def _build_flags(command: argparse.ArgumentParser) -> None:
    _pull_flags(command)
    command.add_argument("--dir", default=".", help="output folder (default: current folder)")
    command.add_argument("--name", help="output name (default: the first spec's base name)")
    command.add_argument(
        "-f",
        "--format",
        action="append",
        metavar="FORMAT[,FORMAT]",
        help="output format, repeatable or comma-separated: kernel+initrd (default), tar, docker, tar-kernel-initrd, "
        "kernel+squashfs, kernel+erofs, kernel+iso, iso-bios, iso-efi, iso-efi-initrd, raw-bios, raw-efi, "
        "qcow2-bios, qcow2-efi, vhd, dynamic-vhd, vmdk, gcp, aws",
    )
    command.add_argument("--size", default="1024M", help="size of disk formats (raw, qcow2, vhd, vmdk, gcp, aws)")
    command.add_argument(
        "--compression",
        default="zstd",
        choices=("zstd", "gzip", "none"),
        help="initrd compression (default zstd; gzip for kernels older than 5.9)",
    )
    command.add_argument("--lock", metavar="FILE", help="the lock to follow (default: SPEC.lock beside the first spec)")
    command.add_argument(
        "--locked", action="store_true", help="fail when the spec and its lock disagree, instead of building unpinned"
    )
    command.add_argument("--no-sbom", action="store_true", help="leave the SBOM out of the image (LinuxKit's flag)")
    command.add_argument(
        "--decompress-kernel", action="store_true", help="write the kernel uncompressed (vmlinux; LinuxKit's flag)"
    )
    command.add_argument(
        "--secure-boot",
        action="store_true",
        help="EFI formats (iso-efi, iso-efi-initrd, raw-efi, qcow2-efi) boot through Debian's Microsoft-signed "
        "shim and Debian's signed GRUB, which check the Debian-signed kernel: they boot with UEFI Secure Boot on "
        "(amd64; the .debs are pinned by `lock --secure-boot`)",
    )


def register(sub: Subparsers) -> None:
    build = sub.add_parser("build", help="build a spec into boot media")
    _build_flags(build)
    build.add_argument("-j", "--jobs", type=int, default=2, help="tasks run at once (default 2)")
    layer_limit_flag(build)
    build.add_argument("--dry-run", action="store_true", help="print the merged, normalised spec and stop")
    build.add_argument("--explain", action="store_true", help="say which tasks will run and why, then build")
    build.add_argument(
        "--provenance",
        metavar="KEY.pem",
        help="write NAME.intoto.jsonl beside the outputs: SLSA provenance signed with this ed25519 or P-256 key",
    )
    build.add_argument(
        "--audit",
        action="store_true",
        help="compute every up-to-date part and output again and fail if the bytes differ (also DISTROKIT_AUDIT=1)",
    )
    build.add_argument(
        "--cache-from",
        action="append",
        metavar="REPO",
        help="OCI repository (REGISTRY/PATH) to fetch task results from before building them; repeatable, "
        "asked in order; env DISTROKIT_CACHE_FROM (spaces or commas)",
    )
    build.add_argument(
        "--cache-to",
        action="append",
        metavar="REPO",
        help="OCI repository to push the results of the tasks this build runs to; repeatable; env DISTROKIT_CACHE_TO",
    )
    signing_flags(build, "what --cache-to pushes")
    jsonout.add_flag(build)
    habits.add_build_flags(build)
    build.add_argument("--sbom-output", metavar="FILE", help="also write the image's SPDX SBOM to FILE")
    build.set_defaults(func=cmd_build)

    explain_cmd = sub.add_parser("explain", help="say which tasks a build would run and why, building nothing")
    _build_flags(explain_cmd)
    jsonout.add_flag(explain_cmd)
    explain_cmd.set_defaults(func=cmd_explain)

    graph = sub.add_parser("graph", help="write the task graph as DOT (SVG with graphviz), what would run marked")
    _build_flags(graph)
    graph.add_argument(
        "-o", "--output", metavar="FILE", help="write here (FILE.svg: drawn by graphviz); default stdout"
    )
    graph.set_defaults(func=cmd_graph)

    validate = sub.add_parser("validate", help="check specs without building or pulling")
    validate.add_argument("spec", nargs="+")
    validate.add_argument(
        "-f", "--format", action="append", help="the output formats to check for, as for build (default kernel+initrd)"
    )
    jsonout.add_flag(validate)
    validate.set_defaults(func=cmd_validate)

    sbom_cmd = sub.add_parser("sbom", help="print the SPDX 2.3 document of what a spec's image holds")
    _pull_flags(sbom_cmd)
    sbom_cmd.set_defaults(func=cmd_sbom)
