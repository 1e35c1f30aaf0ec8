"""The `distrokit` command: argument parsing and printing. The only place that prints or exits."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from . import __version__, cache, components, images, runner, sbom, tasks
from .errors import BadInput, DistrokitError
from .fsutil import store_lock
from .outputs.compress import Compression
from .refs import ImageRef
from .spec import load_spec
from .tasks.explain import UP_TO_DATE, explain
from .transport import Event, EventKind, Network, RetryPolicy

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

DEFAULT_CACHE = "cache"


class _LazyConsole:
    """rich's Console, imported on first use: importing rich costs more than a whole no-change build."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


err_console = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))
out_console = cast("Console", _LazyConsole(highlight=False))


def _cache(args: argparse.Namespace) -> Path:
    return Path(args.cache or os.environ.get("DISTROKIT_CACHE") or DEFAULT_CACHE).resolve()


def _component_root() -> Path:
    return Path(os.environ.get("DISTROKIT_COMPONENTS", "components")).resolve()


def _build_options(args: argparse.Namespace) -> tasks.BuildOptions:
    """The options `build` and `explain` share: explain must key tasks exactly as the build would."""
    return tasks.BuildOptions(
        cache=_cache(args),
        out_dir=Path(args.dir).resolve(),
        name=args.name or Path(args.spec[0]).stem,
        formats=tuple(args.format or ["kernel+initrd"]),
        pull=args.pull,
        compression=Compression.parse(args.compression),
        arch=args.arch,
        network=_network(args),
    )


def cmd_build(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    options = _build_options(args)
    name = options.name
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
    _print_explanations(tasks.plan_build(specs, _build_options(args), _component_root()))
    return 0


def _print_explanations(plan: tasks.Plan) -> None:
    from rich.table import Table

    table = Table("task", "will", "why", box=None, show_header=True, header_style="bold")
    for item in explain(plan):
        if item.status != UP_TO_DATE:
            table.add_row(item.task, item.status, "\n".join(item.reasons))
    if table.row_count:
        out_console.print(table)
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


class TransferDisplay:
    """Shows what pulls and pushes report: a rich bar per image (bytes, speed, retries) on a terminal,
    plain lines otherwise, and only warnings when quiet."""

    PLAIN_EVERY = 5.0

    def __init__(self, console: Console, quiet: bool, verb: str) -> None:
        self.console, self.quiet, self.verb = console, quiet, verb
        self.progress: Progress | None = None
        if console.is_terminal and not quiet:
            from rich.progress import DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            columns = (TextColumn("{task.description}"), DownloadColumn(), TransferSpeedColumn())
            self.progress = Progress(*columns, TextColumn("{task.fields[retries]}"), console=console)
        self.tasks: dict[str, TaskID] = {}
        self.retries: dict[str, int] = {}
        self.last_line: dict[str, float] = {}

    @classmethod
    def for_console(cls, console: Console, quiet: bool, verb: str) -> TransferDisplay:
        return cls(console, quiet, verb)

    def __enter__(self) -> TransferDisplay:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, event: Event) -> None:
        if event.kind is EventKind.WARNING:
            self.console.print(f"warning: {event.name}: {event.message}", markup=False)
        elif event.kind is EventKind.RETRY:
            self.retries[event.name] = self.retries.get(event.name, 0) + 1
            if not self.quiet:
                self.console.print(
                    f"{self.verb} {event.name}: attempt {event.attempt} failed ({event.message}); "
                    f"retrying in {event.seconds:.1f} s",
                    markup=False,
                )
        if self.quiet:
            return
        if self.progress is not None:
            self._bar(self.progress, event)
        else:
            self._line(event)

    def _bar(self, progress: Progress, event: Event) -> None:
        if event.kind is EventKind.START:
            self.tasks[event.name] = progress.add_task(f"{self.verb} {event.name}", total=None, retries="")
            return
        task = self.tasks.get(event.name)
        if task is None:
            return
        retries = self.retries.get(event.name, 0)
        label = f"{retries} retr{'y' if retries == 1 else 'ies'}" if retries else ""
        total = event.bytes if event.kind is EventKind.DONE else None
        progress.update(task, completed=event.bytes, total=total, retries=label)

    def _line(self, event: Event) -> None:
        now = time.monotonic()
        if event.kind is EventKind.START:
            self.console.print(f"{self.verb} {event.name}: started", markup=False)
            self.last_line[event.name] = now
        elif event.kind is EventKind.PROGRESS and now - self.last_line.get(event.name, 0.0) >= self.PLAIN_EVERY:
            self.console.print(f"{self.verb} {event.name}: {_size(event.bytes)} so far", markup=False)
            self.last_line[event.name] = now
        elif event.kind is EventKind.DONE:
            speed = event.bytes / event.seconds if event.seconds > 0 else 0.0
            retries = self.retries.get(event.name, 0)
            self.console.print(
                f"{self.verb} {event.name}: {_size(event.bytes)} in {event.seconds:.1f} s "
                f"({_size(int(speed))}/s), {retries} retr{'y' if retries == 1 else 'ies'}",
                markup=False,
            )

    def result(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def _network(args: argparse.Namespace) -> Network:
    retry = RetryPolicy(attempts=args.retries, timeout=args.timeout, stall=args.stall)
    return Network.from_env(mirrors=args.mirror or (), insecure=args.insecure_registry or (), retry=retry)


LOCAL_TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:")


def cmd_pull(args: argparse.Namespace) -> int:
    store = images.Store(_cache(args))
    network = _network(args)
    if any(text.startswith(LOCAL_TRANSPORTS) for text in args.ref):
        return _pull_local(store, args)
    refs = [ImageRef.parse(text) for text in args.ref]
    with TransferDisplay.for_console(err_console, args.quiet, "pull") as display:
        for ref in refs:
            with store_lock(store.root):  # a gc never removes the blobs of a pull under way
                digest = images.pull(store, ref, network=network, arch=args.arch, listener=display)
            display.result(f"{ref.familiar()} {digest}")
    return 0


def _pull_local(store: images.Store, args: argparse.Namespace) -> int:
    """`pull oci:DIR[:TAG]`, `oci-archive:FILE` or `docker-archive:FILE` into the store under --name."""
    if len(args.ref) != 1 or not args.name:
        raise BadInput("pulling from an oci:, oci-archive: or docker-archive: source takes one source and --name NAME")
    name = ImageRef.parse(args.name)
    with TransferDisplay.for_console(err_console, args.quiet, "pull") as display:
        with store_lock(store.root):
            digest = images.copy_into_store(store, args.ref[0], name, arch=args.arch, listener=display)
        display.result(f"{name.familiar()} {digest}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    store = images.Store(_cache(args))
    with TransferDisplay.for_console(err_console, args.quiet, "push") as display:
        with store_lock(store.root):  # a gc never removes the blobs of a push under way
            digest = images.push(store, ImageRef.parse(args.ref), args.dest, network=_network(args), listener=display)
        display.result(f"{args.dest} {digest}")
    return 0


def cmd_pkg_push(args: argparse.Namespace) -> int:
    """LinuxKit's `pkg push`: build each component when it is not in the store, then push it to --to."""
    store = images.Store(_cache(args))
    network = _network(args)
    with TransferDisplay.for_console(err_console, args.quiet, "push") as display:
        for folder in args.folder:
            recipe = components.load_recipe(Path(folder))
            dest = f"{args.to.rstrip('/')}/{recipe.ref.path}:{recipe.ref.tag}"
            with store_lock(store.root):
                if store.lookup(recipe.ref) is None:
                    components.build(store, recipe, components.pinned_packages(store.root, recipe))
                digest = images.push(store, recipe.ref, dest, network=network, listener=display)
            display.result(f"{dest} {digest}")
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
def _when(stamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp)) if stamp else "-"


def _print_table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> None:
    """A rich table on a terminal; tab-separated lines with a header otherwise (for scripts)."""
    if not out_console.is_terminal:
        for row in [list(columns), *rows]:
            print("\t".join(row))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)


def cmd_cache_ls(args: argparse.Namespace) -> int:
    rows = [
        [
            row.name + ("" if row.complete else " (incomplete)"),
            row.digest[:19],
            _size(row.size),
            _when(row.last_used),
            ", ".join(row.used_by) or "-",
        ]
        for row in cache.ls(_cache(args))
    ]
    _print_table(("image", "digest", "size", "last used", "used by"), rows, right=("size",))
    return 0


def cmd_cache_du(args: argparse.Namespace) -> int:
    usage = cache.du(_cache(args))
    rows = [[area.area, str(area.files), _size(area.size)] for area in usage.areas]
    rows.append(["total", str(sum(area.files for area in usage.areas)), _size(usage.total)])
    _print_table(("area", "files", "size"), rows, right=("files", "size"))
    return 0


def cmd_cache_gc(args: argparse.Namespace) -> int:
    keep = cache.parse_size(args.keep) if args.keep is not None else None
    report = cache.gc(_cache(args), keep)
    if args.verbose and report.removed:
        _print_table(
            ("removed", "size", "last used"), [[r.path, _size(r.size), _when(r.last_used)] for r in report.removed]
        )
    for spec in report.stale_records:
        err_console.print(f"forgot spec {spec}: none of its files exist any more")
    err_console.print(
        f"removed {len(report.removed)} entries, freed {_size(report.freed)}; "
        f"the store is {_size(report.size_after)}"
        + (f" (asked for at most {_size(keep)})" if keep is not None and report.size_after > keep else "")
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

    _build_parsers(sub)
    _run_parser(sub)
    _transfer_parsers(sub)
    _cache_parser(sub)
    return top


def _build_flags(command: argparse.ArgumentParser) -> None:
    command.add_argument("spec", nargs="+", help="spec files, merged in order")
    command.add_argument("--dir", default=".", help="output folder (default: current folder)")
    command.add_argument("--name", help="output name (default: the first spec's base name)")
    command.add_argument("-f", "--format", action="append", help="output format: kernel+initrd (default), tar")
    command.add_argument("--pull", action="store_true", help="pull images even when they are in the store")
    command.add_argument("--arch", default="amd64", help="platform to take from multi-platform images (default amd64)")
    command.add_argument(
        "--compression",
        default="zstd",
        choices=("zstd", "gzip", "none"),
        help="initrd compression (default zstd; gzip for kernels older than 5.9)",
    )
    _transfer_flags(command)


def _build_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    build = sub.add_parser("build", help="build a spec into boot media")
    _build_flags(build)
    build.add_argument("-j", "--jobs", type=int, default=2, help="tasks run at once (default 2)")
    build.add_argument("--dry-run", action="store_true", help="print the merged, normalised spec and stop")
    build.add_argument("--explain", action="store_true", help="say which tasks will run and why, then build")
    build.set_defaults(func=cmd_build)

    explain_cmd = sub.add_parser("explain", help="say which tasks a build would run and why, building nothing")
    _build_flags(explain_cmd)
    explain_cmd.set_defaults(func=cmd_explain)

    validate = sub.add_parser("validate", help="check specs without building or pulling")
    validate.add_argument("spec", nargs="+")
    validate.set_defaults(func=cmd_validate)

    sbom_cmd = sub.add_parser("sbom", help="print the SPDX 2.3 document of what a spec's image holds")
    sbom_cmd.add_argument("spec", nargs="+", help="spec files, merged in order")
    sbom_cmd.set_defaults(func=cmd_sbom)


def _run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _transfer_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pull = sub.add_parser("pull", help="pull images into the store")
    pull.add_argument(
        "ref", nargs="+", help="registry references, or one oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE"
    )
    pull.add_argument("--name", help="the name to store a local (oci:, oci-archive:, docker-archive:) image under")
    pull.add_argument("--arch", default="amd64", help="platform to take from multi-platform images (default amd64)")
    _transfer_flags(pull)
    pull.set_defaults(func=cmd_pull)

    push = sub.add_parser("push", help="push an image from the store to a registry")
    push.add_argument("ref", help="the image in the store")
    push.add_argument("dest", help="REGISTRY/PATH[:TAG]")
    _transfer_flags(push)
    push.set_defaults(func=cmd_push)

    pkg = sub.add_parser("pkg", help="component images").add_subparsers(dest="pkg_command", required=True)
    pkg_build = pkg.add_parser("build", help="build component images from Debian packages")
    pkg_build.add_argument("folder", nargs="+")
    pkg_build.add_argument("--update", action="store_true", help="ask apt for newer packages than the pinned ones")
    pkg_build.set_defaults(func=cmd_pkg_build)
    pkg_push = pkg.add_parser("push", help="build component images when needed and push them to a registry")
    pkg_push.add_argument("folder", nargs="+")
    pkg_push.add_argument("--to", required=True, help="REGISTRY[/PREFIX] to push to, e.g. 127.0.0.1:5000")
    _transfer_flags(pkg_push)
    pkg_push.set_defaults(func=cmd_pkg_push)


def _transfer_flags(command: argparse.ArgumentParser) -> None:
    default = RetryPolicy()
    command.add_argument(
        "--mirror",
        action="append",
        help="[REGISTRY=]URL to pull REGISTRY's images from (all registries without REGISTRY=); repeatable; "
        "env DISTROKIT_MIRRORS (spaces or commas), flags win",
    )
    command.add_argument(
        "--insecure-registry",
        action="append",
        metavar="HOST",
        help="allow plain http and unverified TLS for HOST (loopback always is); env DISTROKIT_INSECURE_REGISTRIES",
    )
    command.add_argument("--retries", type=int, default=default.attempts, help="attempts in all per image")
    command.add_argument("--timeout", type=float, default=default.timeout, help="seconds per attempt at most")
    command.add_argument(
        "--stall", type=float, default=default.stall, help="seconds without a new byte before an attempt is retried"
    )
    command.add_argument("-q", "--quiet", action="store_true", help="no progress, only errors and warnings")


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
