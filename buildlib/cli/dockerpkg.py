"""`pkg build` and `pkg show-tag` of a LinuxKit package folder (build.yml + Dockerfile), built by buildah."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .. import arches
from ..errors import BadInput
from ..fsutil import store_lock
from ..lazy import lazy_module
from .common import err_console

if TYPE_CHECKING:
    from ..dockerfile import builder, buildyml
    from ..store import images, platforms, transport
else:
    builder, buildyml, images, platforms, transport = (
        lazy_module(name)
        for name in (
            "buildlib.dockerfile.builder",
            "buildlib.dockerfile.buildyml",
            "buildlib.store.images",
            "buildlib.store.platforms",
            "buildlib.store.transport",
        )
    )


def is_package_folder(folder: str) -> bool:
    from ..dockerfile import is_package_folder as holds_build_yml  # the package alone, not its builder

    return holds_build_yml(Path(folder))


def naming(args: argparse.Namespace) -> buildyml.Naming:
    return buildyml.Naming(org=args.org, tag=args.tag, dev=args.dev, hash_path=args.hash_path)


def platforms_of(args: argparse.Namespace) -> list[str]:
    """LinuxKit's --platforms (`linux/amd64,linux/arm64`) as architectures; --arch without it."""
    if not args.platforms:
        return [arches.normalise(args.arch)]
    return list(dict.fromkeys(arches.normalise(text.strip()) for text in args.platforms.split(",") if text.strip()))


def build_package(store: images.Store, folder: str, args: argparse.Namespace) -> None:
    """Build one package folder for each platform (nothing runs when the store's record matches its
    inputs); with several, its name holds them all (an OCI index, as `pkg push` sends it)."""
    package = buildyml.load_package(Path(folder), naming(args))
    extra = read_build_arg_file(args.build_arg_file) if args.build_arg_file else ()
    targets = platforms_of(args)
    name = package.ref.familiar()
    with store_lock(store.root):
        for arch in targets:
            digest, built = ensure_package(store, package, arch, extra, force=args.force)
            err_console.print(f"{name} linux/{arch} {digest}{'' if built else ' (up to date)'}")
        if len(targets) > 1:
            err_console.print(f"{name} index {store.named_digest(package.ref)}")
    print(name, flush=True)  # the result on stdout, as `linuxkit pkg build` prints it


def ensure_package(
    store: images.Store,
    package: buildyml.DockerPackage,
    arch: str,
    extra: tuple[str, ...] = (),
    *,
    force: bool = False,
    network: transport.Network | None = None,
) -> tuple[str, bool]:
    """The package's manifest digest for `arch`, built when out of date; and whether it was built now."""
    build = builder.resolve(store, package, arch, extra, pull=True, network=network or transport.Network.from_env())
    assert build is not None  # with pull=True every base is resolved or an error was raised
    return builder.ensure(store, build, force=force)


def push_package(
    store: images.Store, folder: str, targets: list[str], to: str, network: transport.Network
) -> tuple[str, str]:
    """Build the package for each architecture when needed: the destination and the digest to push (one
    platform's manifest, or an index of several under the package's tag, as LinuxKit pushes)."""
    package = buildyml.load_package(Path(folder))
    built = {arch: ensure_package(store, package, arch, network=network)[0] for arch in targets}
    digest = built[targets[0]] if len(targets) == 1 else platforms.put_index(store, built)
    return f"{to.rstrip('/')}/{package.org}/{package.image}:{package.tag}", digest


def read_build_arg_file(path: str) -> tuple[str, ...]:
    """LinuxKit's --build-arg-file: one NAME=VALUE a line; blank lines and # comments are skipped."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read the build arg file: {exc.strerror}") from exc
    args = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if "=" not in text or text.startswith("="):
            raise BadInput(f"{path}:{number}: {text!r}: give NAME=VALUE")
        args.append(text)
    return tuple(args)


def cmd_pkg_show_tag(args: argparse.Namespace) -> int:
    """LinuxKit's `pkg show-tag`: ORG/IMAGE:TAG of each package folder, as LinuxKit would tag it."""
    for folder in args.folder:
        package = buildyml.load_package(Path(folder), naming(args))
        print(f"{package.org}/{package.image}:{package.tag}")
    return 0
