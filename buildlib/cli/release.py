"""`lock` and `verify`: pin every input of a spec, and prove a release rebuilds bit for bit."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from .. import arches
from ..fsutil import store_lock
from ..lazy import lazy_module
from ..release import lockpath
from .common import Subparsers, component_root, err_console, network_options, store_root, transfer_flags

if TYPE_CHECKING:  # loaded when a command runs, not when the parser is made
    from ..debian import components, recipes
    from ..release import lock, pinning
    from ..spec import model as speclib
else:
    components, lock, pinning, speclib = (
        lazy_module(name)
        for name in (
            "buildlib.debian.components",
            "buildlib.release.lock",
            "buildlib.release.pinning",
            "buildlib.spec.model",
        )
    )
    recipes = lazy_module("buildlib.debian.recipes")


def cmd_lock(args: argparse.Namespace) -> int:
    specs = [Path(p) for p in args.spec]
    path = Path(args.lock) if args.lock else lockpath.path_for(specs[0])
    resolver = recipes.PkgResolver(components=component_root(args))
    spec = speclib.load_spec(specs, resolve_pkg=resolver)
    previous = lock.read(path) if path.is_file() else None
    # once pinned, the signed loaders stay pinned, as the platforms do
    secure_boot = args.secure_boot or (previous is not None and pinning.pins_secure_boot(previous))
    inputs = pinning.spec_inputs(spec, component_root(args), resolver, secure_boot=secure_boot)
    platforms = _platforms(args.arch, previous, inputs)
    cache = store_root(args)
    with store_lock(cache):  # the store's pins are written as a cache of the lock
        pins = pinning.make_lock(
            inputs, platforms, cache, previous=previous, update=args.update, network=network_options(args)
        )
    changed = lock.write(path, pins)
    for line in _changes(previous or lock.Lock(), pins):
        err_console.print(line, markup=False)
    err_console.print(f"wrote {path}" if changed else f"{path} is up to date", markup=False)
    return 0


def _platforms(arch: list[str] | None, previous: lock.Lock | None, inputs: pinning.SpecInputs) -> tuple[str, ...]:
    """--arch as given, else every platform the lock pins now (its images' and its components'), else amd64."""
    if arch:
        return tuple(dict.fromkeys(lock.platform_of(arches.normalise(a)) for a in arch))
    known = pinning.locked_platforms(previous, inputs) if previous else ()
    return known or (lock.platform_of("amd64"),)


def _changes(old: lock.Lock, new: lock.Lock) -> list[str]:
    """One line per entry the new lock adds, moves or drops."""
    lines = []
    for ref in sorted(set(old.images) | set(new.images)):
        before, after = old.images.get(ref), new.images.get(ref)
        if before != after:
            lines.append(f"image {ref}: {before.digest if before else 'new'} -> {after.digest if after else 'dropped'}")
    for name in sorted(set(old.components) | set(new.components)):
        was, now = old.components.get(name), new.components.get(name)
        if was != now:
            describe = {p.name: p.version for p in now.packages} if now else "dropped"
            lines.append(f"component {name}: {describe}")
    return lines


def cmd_verify(args: argparse.Namespace) -> int:
    from ..tasks import verify
    from .build import _build_options

    options = _build_options(args)
    report = verify.verify([Path(p) for p in args.spec], options, component_root(args), work=args.work)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        for warning in report.warnings:
            err_console.print(f"warning: {warning}", markup=False)
        for result in report.files:
            if result.matches:
                err_console.print(f"ok       {result.name} {result.expected}", markup=False)
            else:
                err_console.print(f"DIFFERS  {result.name}: {result.reason}", markup=False)
        verdict = "every output rebuilds bit for bit" if report.ok else "the outputs do NOT rebuild bit for bit"
        err_console.print(f"{verdict} ({len(report.files)} files)", markup=False)
    if args.provenance and report.ok:
        from ..release import provenance

        attestation = options.out_dir / f"{options.name}{provenance.SUFFIX}"
        provenance.verify(attestation, Path(args.provenance), options.out_dir)
        err_console.print(f"{attestation}: signature verified; it names these outputs", markup=False)
    return 0 if report.ok else 1


def cmd_attest_verify(args: argparse.Namespace) -> int:
    from ..release import provenance

    folder = Path(args.dir) if args.dir else Path(args.attestation).parent
    document = provenance.verify(Path(args.attestation), Path(args.key), folder)
    subjects = document["subject"]
    err_console.print(
        f"{args.attestation}: signature verified; {len(subjects)} output files match ({folder})", markup=False
    )
    return 0


def _register_lock(sub: Subparsers) -> None:
    lock_cmd = sub.add_parser(
        "lock",
        help="pin every image and Debian package of a spec in SPEC.lock, for each platform asked",
        description="Pin every registry image (its tag's digest and each platform's manifest) and every "
        "component's .deb files in SPEC.lock. Components are pinned per platform: amd64's under NAME, "
        "another architecture's under NAME-ARCH (kernel-arm64). `--arch amd64 --arch arm64` pins both; "
        "without --arch the platforms the lock already pins are kept. Locking again changes nothing unless "
        "the spec changed or --update names an entry (NAME renews every platform's, NAME-ARCH one).",
    )
    lock_cmd.add_argument("spec", nargs="+", help="spec files, merged in order (the lock goes beside the first)")
    lock_cmd.add_argument("--lock", metavar="FILE", help="the lock file to write (default: SPEC.lock)")
    lock_cmd.add_argument(
        "--update",
        nargs="*",
        metavar="NAME",
        help="ask again for every entry, or only the named images and components: a component's NAME renews "
        "it on every platform, NAME-ARCH (init-arm64) on one (put it last)",
    )
    lock_cmd.add_argument(
        "--arch",
        action="append",
        help="platform to pin, repeatable: every one listed, and only those (default: the lock's, else amd64)",
    )
    lock_cmd.add_argument(
        "--secure-boot",
        action="store_true",
        help="pin the .debs of `build --secure-boot`'s signed loaders too (shim-signed, grub-efi-amd64-signed); "
        "kept pinned by later locks",
    )
    transfer_flags(lock_cmd)
    lock_cmd.set_defaults(func=cmd_lock)


def register(sub: Subparsers) -> None:
    from .build import _build_flags

    _register_lock(sub)

    verify_cmd = sub.add_parser(
        "verify",
        help="rebuild in a fresh cache and compare with the outputs in --dir",
        description="Rebuild a spec's outputs in a fresh cache from its lock's pins (without a lock, from what "
        "the store last built it from) and compare them byte for byte with those in --dir. With --arch arm64 "
        "it rebuilds and compares the arm64 outputs (NAME-arm64) from the lock's arm64 pins.",
    )
    _build_flags(verify_cmd)
    verify_cmd.add_argument("--work", metavar="DIR", help="where the fresh cache goes (default: a temp folder)")
    verify_cmd.add_argument(
        "--provenance",
        metavar="KEY.pem",
        help="also check NAME.intoto.jsonl in --dir: signed with KEY, naming these files",
    )
    verify_cmd.add_argument("--json", action="store_true", help="print the result as one JSON object")
    verify_cmd.set_defaults(func=cmd_verify)

    attest = sub.add_parser("attest", help="check signed provenance (NAME.intoto.jsonl from build --provenance)")
    attest_commands = attest.add_subparsers(dest="attest_command", required=True)
    check = attest_commands.add_parser(
        "verify",
        help="check the signature with a public key and every output file against its sha256",
        description="Check a NAME.intoto.jsonl written by `build --provenance`: a signature on it verifies "
        "with KEY (a PEM public key, or the private key), and every output file it names is in DIR with the "
        "sha256 it names. Exit 0 when both hold; 1 naming the first file or signature that does not.",
    )
    check.add_argument("attestation", help="the NAME.intoto.jsonl file")
    check.add_argument("--key", required=True, metavar="PUB.pem", help="the public key (or private key) to check with")
    check.add_argument("--dir", metavar="DIR", help="where the outputs are (default: the attestation's folder)")
    check.set_defaults(func=cmd_attest_verify)
