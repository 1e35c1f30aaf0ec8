"""`pull`, `push` and `pkg`: moving images between registries, files and the store."""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from .. import arches
from ..errors import BadInput
from ..fsutil import store_lock
from ..lazy import lazy_module
from ..spec.refs import ImageRef
from ..store.transport import Event, EventKind, Network
from . import dockerpkg, jsonout
from .common import (
    Subparsers,
    apply_layer_limit,
    err_console,
    human_size,
    layer_limit_flag,
    network_options,
    signer_options,
    signing_flags,
    store_root,
    transfer_flags,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from ..debian import apt as debarch
    from ..debian import archive, components, recipes
    from ..debian import builds as component_builds
    from ..rootfs import layers
    from ..store import images, platforms, pulls
    from ..upkeep import cache
else:
    cache, component_builds, components, debarch, images, layers, platforms, pulls = (
        lazy_module(name)
        for name in (
            "buildlib.upkeep.cache",
            "buildlib.debian.builds",
            "buildlib.debian.components",
            "buildlib.debian.apt",
            "buildlib.store.images",
            "buildlib.rootfs.layers",
            "buildlib.store.platforms",
            "buildlib.store.pulls",
        )
    )
    archive = lazy_module("buildlib.debian.archive")
    recipes = lazy_module("buildlib.debian.recipes")


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
            self.console.print(f"{self.verb} {event.name}: {human_size(event.bytes)} so far", markup=False)
            self.last_line[event.name] = now
        elif event.kind is EventKind.DONE:
            speed = event.bytes / event.seconds if event.seconds > 0 else 0.0
            retries = self.retries.get(event.name, 0)
            self.console.print(
                f"{self.verb} {event.name}: {human_size(event.bytes)} in {event.seconds:.1f} s "
                f"({human_size(int(speed))}/s), {retries} retr{'y' if retries == 1 else 'ies'}",
                markup=False,
            )

    def result(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, markup=False)


LOCAL_TRANSPORTS = ("oci:", "oci-archive:", "docker-archive:")


def cmd_pull(args: argparse.Namespace) -> int:
    apply_layer_limit(args)
    store = images.Store(store_root(args))
    network = network_options(args)
    if any(text.startswith(LOCAL_TRANSPORTS) for text in args.ref):
        return _pull_local(store, args)
    refs = [ImageRef.parse(text) for text in args.ref]
    pulled = []
    with TransferDisplay.for_console(err_console, args.quiet, "pull") as display:
        for ref in refs:
            with store_lock(store.root):  # a gc never removes the blobs of a pull under way
                digest = pulls.pull(
                    store,
                    ref,
                    network=network,
                    arch=args.arch,
                    listener=display,
                    check=partial(layers.index_image, store),
                )
            display.result(f"{ref.familiar()} {digest}")
            pulled.append((str(ref), digest))
    _emit_pulled(args, pulled)
    return 0


def _emit_pulled(args: argparse.Namespace, pulled: list[tuple[str, str]]) -> None:
    if jsonout.wanted(args):
        jsonout.emit("pull", {"images": [{"ref": ref, "digest": digest} for ref, digest in pulled]})


def _pull_local(store: images.Store, args: argparse.Namespace) -> int:
    """`pull oci:DIR[:TAG]`, `oci-archive:FILE` or `docker-archive:FILE` into the store under --name."""
    if len(args.ref) != 1:
        raise BadInput("pulling from an oci:, oci-archive: or docker-archive: source takes one source at a time")
    name = ImageRef.parse(args.name or _archive_name(args.ref[0]))
    with TransferDisplay.for_console(err_console, args.quiet, "pull") as display:
        with store_lock(store.root):
            digest = pulls.copy_into_store(  # the policy applies to local sources too (its oci: scopes)
                store,
                args.ref[0],
                name,
                network=network_options(args),
                arch=args.arch,
                listener=display,
                check=partial(layers.index_image, store),
            )
        display.result(f"{name.familiar()} {digest}")
    _emit_pulled(args, [(str(name), digest)])
    return 0


def _archive_name(source: str) -> str:
    """The name an oci-archive: or docker-archive: file holds, as `cache import` takes it."""
    transport, _, path = source.partition(":")
    held = cache.archive_kind(Path(path))[1] if transport in ("oci-archive", "docker-archive") else None
    if not held:
        kind = "this archive holds no image name" if transport != "oci" else "an oci: layout holds no full name"
        raise BadInput(f"{source}: {kind}: give one with --name NAME")
    return held


def cmd_push(args: argparse.Namespace) -> int:
    store = images.Store(store_root(args))
    network, signer = network_options(args), signer_options(args)
    with TransferDisplay.for_console(err_console, args.quiet, "push") as display:
        with store_lock(store.root):  # a gc never removes the blobs of a push under way
            ref = ImageRef.parse(args.ref)
            digest = pulls.push(store, ref, args.dest, network=network, listener=display, signer=signer)
        display.result(f"{args.dest} {digest}")
    return 0


def cmd_pkg_push(args: argparse.Namespace) -> int:
    """LinuxKit's `pkg push`: build each component when it is not in the store, then push it to --to."""
    store = images.Store(store_root(args))
    network, signer = network_options(args), signer_options(args)
    targets = list(dict.fromkeys(arches.normalise(arch) for arch in args.arch or ["amd64"]))
    with TransferDisplay.for_console(err_console, args.quiet, "push") as display:
        for folder in args.folder:
            if dockerpkg.is_package_folder(folder):  # a LinuxKit package folder, built by buildah
                with store_lock(store.root):
                    dest, digest = dockerpkg.push_package(store, folder, targets, args.to, network)
                    digest = pulls.push_digest(store, digest, dest, network=network, listener=display, signer=signer)
                    also = _push_also_as(store, digest, dest, args.also_tag, network, display)
                for pushed in (dest, *also):
                    display.result(f"{pushed} {digest}")
                continue
            with store_lock(store.root):
                built = {arch: _built_component(store, Path(folder), arch) for arch in targets}
                recipe = recipes.load_recipe(Path(folder), targets[0])
                # several architectures: one index under the recipe's key, as LinuxKit pushes a multi-arch tag
                tag = recipe.tag if len(targets) == 1 else recipe.key
                digest = built[targets[0]] if len(targets) == 1 else platforms.put_index(store, built)
                dest = f"{args.to.rstrip('/')}/{recipe.ref.path}:{tag}"
                digest = pulls.push_digest(store, digest, dest, network=network, listener=display, signer=signer)
                also = _push_also_as(store, digest, dest, args.also_tag, network, display)
            for pushed in (dest, *also):
                display.result(f"{pushed} {digest}")
    return 0


def _push_also_as(
    store: images.Store, digest: str, dest: str, tags: list[str] | None, network: Network, display: TransferDisplay
) -> list[str]:
    """The pushed image (or index) under more tags of the same repository: `--tag latest`, LinuxKit's habit.
    Not signed again: a signature is stored per digest, and a second one would replace the first's identity."""
    repository = dest.rsplit(":", 1)[0]
    pushed = [f"{repository}:{tag}" for tag in tags or ()]
    for target in pushed:
        pulls.push_digest(store, digest, target, network=network, listener=display)
    return pushed


def _built_component(store: images.Store, folder: Path, arch: str) -> str:
    """The component image of `folder` for `arch` in the store (built when missing): its manifest digest."""
    recipe = recipes.load_recipe(folder, arch)
    digest, _ = component_builds.ensure(store, recipe, archive.pinned_packages(store.root, recipe))
    return digest


def cmd_pkg_build(args: argparse.Namespace) -> int:
    store = images.Store(store_root(args))
    for arch in dockerpkg.platforms_of(args) if args.update else ():
        debarch.refresh(arch)  # a foreign architecture's package lists are ours to keep fresh
    for folder in args.folder:
        if dockerpkg.is_package_folder(folder):  # LinuxKit's build.yml + Dockerfile: buildah builds it
            dockerpkg.build_package(store, folder, args)
            continue
        for arch in dockerpkg.platforms_of(args):
            recipe = recipes.load_recipe(Path(folder), arch)
            with store_lock(store.root):
                packages = archive.pinned_packages(store.root, recipe, refresh=args.update)
                digest, built = component_builds.ensure(store, recipe, packages, force=args.force)
            err_console.print(f"{recipe.ref.familiar()} {digest}{'' if built else ' (up to date)'}")
            print(recipe.ref.familiar(), flush=True)  # the result on stdout, as `linuxkit pkg build` prints it
    return 0


def linuxkit_package_flags(command: argparse.ArgumentParser) -> None:
    """LinuxKit's --org, --tag, --dev and --hash-path, over a build.yml's own (not for component folders)."""
    command.add_argument("--org", help="a LinuxKit package's org, over its build.yml's (default linuxkit)")
    command.add_argument("--tag", help="a LinuxKit package's tag template, over its build.yml's (default {{.Hash}})")
    command.add_argument(
        "--dev", action="store_true", help="a LinuxKit package's development tag: org $USER, hash `dev` (as LinuxKit)"
    )
    command.add_argument(
        "--hash-path",
        metavar="DIR",
        help="a LinuxKit package's hash from this folder's git tree (a parent of the package folder)",
    )


def register(sub: Subparsers) -> None:
    pull = sub.add_parser("pull", help="pull images into the store")
    pull.add_argument(
        "ref", nargs="+", help="registry references, or one oci:DIR[:TAG], oci-archive:FILE or docker-archive:FILE"
    )
    pull.add_argument(
        "--name",
        help="the name to store a local (oci:, oci-archive:, docker-archive:) image under "
        "(default for an archive: the name it holds)",
    )
    pull.add_argument("--arch", default="amd64", help="platform to take from multi-platform images (default amd64)")
    transfer_flags(pull)
    jsonout.add_flag(pull)
    layer_limit_flag(pull)
    pull.set_defaults(func=cmd_pull)

    push = sub.add_parser("push", help="push an image from the store to a registry")
    push.add_argument("ref", help="the image in the store")
    push.add_argument("dest", help="REGISTRY/PATH[:TAG]")
    transfer_flags(push)
    signing_flags(push)
    push.set_defaults(func=cmd_push)

    pkg = sub.add_parser("pkg", help="component images").add_subparsers(dest="pkg_command", required=True)
    register_pkg_build(pkg)
    show_tag = pkg.add_parser("show-tag", help="the ORG/IMAGE:TAG LinuxKit would give a package folder (build.yml)")
    show_tag.add_argument("folder", nargs="+")
    linuxkit_package_flags(show_tag)
    show_tag.set_defaults(func=dockerpkg.cmd_pkg_show_tag)
    pkg_push = pkg.add_parser("push", help="build component images when needed and push them to a registry")
    pkg_push.add_argument("folder", nargs="+")
    pkg_push.add_argument("--to", required=True, help="REGISTRY[/PREFIX] to push to, e.g. 127.0.0.1:5000")
    pkg_push.add_argument(
        "--arch",
        action="append",
        help="architecture to build and push; repeat it for a multi-arch index under the recipe's key (default amd64)",
    )
    pkg_push.add_argument(
        "--tag",
        dest="also_tag",
        action="append",
        metavar="TAG",
        help="also push it under TAG in the same repository (e.g. latest, as LinuxKit's pkg push does); repeatable",
    )
    transfer_flags(pkg_push)
    signing_flags(pkg_push)
    pkg_push.set_defaults(func=cmd_pkg_push)


def register_pkg_build(pkg: Subparsers) -> None:
    pkg_build = pkg.add_parser(
        "build", help="build component images from Debian packages, or LinuxKit package folders with buildah"
    )
    pkg_build.add_argument("folder", nargs="+", help="component folders (component.yml) or LinuxKit's (build.yml)")
    pkg_build.add_argument("--update", action="store_true", help="ask apt for newer packages than the pinned ones")
    pkg_build.add_argument("--arch", default="amd64", help="Debian architecture to build for (default amd64)")
    pkg_build.add_argument(
        "--platforms",
        metavar="LIST",
        help="platforms to build for, e.g. linux/amd64,linux/arm64 (over --arch): one image each; a LinuxKit "
        "package's name then holds a multi-arch index",
    )
    pkg_build.add_argument("--force", action="store_true", help="build even when the image is up to date")
    linuxkit_package_flags(pkg_build)
    pkg_build.add_argument(
        "--build-arg-file", metavar="FILE", help="NAME=VALUE lines: build args for a LinuxKit package's Dockerfile"
    )
    pkg_build.set_defaults(func=cmd_pkg_build)
