"""`distrokit verify`: rebuild a spec's outputs in a fresh cache and compare them, byte for byte, with a
release's.

The fresh cache starts empty but for what is checked against a digest: the .deb files the pins name
(by SHA256) and the blobs of the pinned registry images (by their digests), so nothing a previous build
computed (component images, layer indexes, segments, doit's records) is reused. The pins are the spec's
lock, or without one what the store last built from, for the build's architecture (`--arch arm64`
rebuilds from the arm64 .debs pinned under NAME-arm64 and the images' arm64 manifests). On a difference
the first differing member (a cpio or tar entry) is named.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import outputs, tasks
from ..debian import recipes
from ..fsutil import sha256_file, store_lock
from ..outputs.efi import EFI_LOADERS
from ..outputs.members import first_difference
from ..release import pinning
from ..release.lock import Lock, platform_of
from ..spec.model import load_spec
from ..store.images import Store


@dataclass(frozen=True)
class FileResult:
    name: str
    expected: str | None  # sha256 of the release's file; None when it is missing
    rebuilt: str
    member: str | None = None  # the first differing member
    detail: str = ""

    @property
    def matches(self) -> bool:
        return self.expected == self.rebuilt

    @property
    def reason(self) -> str:
        if self.expected is None:
            return "missing from the release folder"
        if self.member:
            return f"first differing member {self.member}: {self.detail}"
        return (
            self.detail or f"sha256 {self.expected[7:]} != rebuilt {self.rebuilt[7:]}"
        )  # in full: a cut pair may read alike


@dataclass(frozen=True)
class Report:
    files: tuple[FileResult, ...]
    warnings: tuple[str, ...] = ()  # how the spec and its lock disagree: what the rebuild took unpinned

    @property
    def ok(self) -> bool:
        return bool(self.files) and all(result.matches for result in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "warnings": list(self.warnings),
            "files": [
                {
                    "file": r.name,
                    "matches": r.matches,
                    "expected": r.expected,
                    "rebuilt": r.rebuilt,
                    "member": r.member,
                    "detail": r.reason if not r.matches else "",
                }
                for r in self.files
            ],
        }


def verify(
    spec_paths: Sequence[Path],
    options: tasks.BuildOptions,
    component_root: Path,
    *,
    work: str | Path | None = None,
    jobs: int = 2,
) -> Report:
    """Rebuild `spec_paths` as `options` asks, in a fresh cache, and compare with `options.out_dir`."""
    old = Store(options.cache, options.arch)
    resolver = recipes.PkgResolver(options.arch, component_root)
    spec = load_spec(spec_paths, resolve_pkg=resolver)
    inputs = pinning.spec_inputs(spec, component_root, resolver, secure_boot=options.secure_boot)
    platform = platform_of(options.arch)
    pins = options.lock or pinning.pins_in_store(old, inputs, platform)
    with tempfile.TemporaryDirectory(prefix="distrokit-verify-", dir=work) as scratch:
        fresh = Store(Path(scratch) / "cache")
        with store_lock(old.root):
            seed(old, fresh, pins, platform, {recipe.build_name for recipe in inputs.recipes((platform,))})
        rebuilt = replace(options, cache=fresh.root, out_dir=Path(scratch) / "out", lock=pins, pull=False)
        built = tasks.build_spec(spec_paths, rebuilt, component_root, jobs=jobs)
        report = compare(options.out_dir, rebuilt.out_dir, options.name, options.formats)
        return replace(report, warnings=built.warnings)


def seed(old: Store, fresh: Store, pins: Lock, platform: str, names: Collection[str] | None = None) -> None:
    """Put into `fresh` the pinned .debs and image blobs `old` holds for `platform`, each checked against
    its digest; `names` are the component entries the platform's build uses (None: every one)."""
    for name, component in pins.components.items():
        if names is not None and name not in names:
            continue  # another architecture's .debs: the rebuild never reads them
        for package in component.packages:
            deb = old.root / "debs" / package.filename
            if deb.is_file() and sha256_file(deb) == "sha256:" + package.sha256:
                _link(deb, fresh.root / "debs" / package.filename)
    _seed_grub_modules(old, fresh, platform)
    for ref, pin in pins.images.items():
        manifest = pin.platforms.get(platform)
        if manifest is None:
            continue
        stored = _stored_digest(old, manifest)
        if stored != manifest:
            _link(old.root / "pinned" / manifest.replace(":", "-"), fresh.root / "pinned" / manifest.replace(":", "-"))
        _seed_image(old, fresh, ref, stored)


def _seed_grub_modules(old: Store, fresh: Store, platform: str) -> None:
    """The GRUB modules .deb a foreign architecture's EFI formats were built with (see grub_modules): it
    matches the host's GRUB, which the rebuild uses too, so the rebuild needs no trip to the archive."""
    loader = EFI_LOADERS.get(platform.removeprefix("linux/"))
    if loader is None or loader.module_dir().is_dir():
        return  # the host's own modules: nothing of the store's is read
    for deb in (old.root / "debs").glob(f"{loader.package}_*_{loader.arch}.deb"):
        _link(deb, fresh.root / "debs" / deb.name)


def _stored_digest(store: Store, manifest: str) -> str:
    alias = store.root / "pinned" / manifest.replace(":", "-")
    return alias.read_text().strip() if alias.is_file() else manifest


def _seed_image(old: Store, fresh: Store, ref: str, manifest_digest: str) -> None:
    if not old.verify_blob(manifest_digest):
        return
    image = old.image_by_digest(ref, manifest_digest)
    for digest in [manifest_digest, image.config_digest, *(layer.digest for layer in image.layers)]:
        if old.verify_blob(digest):
            _link(old.blob_path(digest), fresh.blob_path(digest))


def _link(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (nothing is copied), a copy otherwise."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        return  # two components pinning one .deb (busybox-static in init and busybox) bring it once
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def compare(expected_dir: Path, rebuilt_dir: Path, name: str, formats: Sequence[str]) -> Report:
    """Every output file of `formats` under `name`, the release's against the rebuilt one."""
    results = []
    for fmt in formats:
        for rebuilt in outputs.get_format(fmt).targets(rebuilt_dir / name):
            results.append(compare_file(expected_dir / rebuilt.name, rebuilt))
    return Report(tuple(results))


def compare_file(expected: Path, rebuilt: Path) -> FileResult:
    ours = sha256_file(rebuilt)
    if not expected.is_file():
        return FileResult(expected.name, None, ours)
    theirs = sha256_file(expected)
    if theirs == ours:
        return FileResult(expected.name, theirs, ours)
    try:
        difference = first_difference(expected, rebuilt)
    except (ValueError, OSError, EOFError) as exc:
        return FileResult(expected.name, theirs, ours, None, f"its members cannot be read ({exc})")
    if difference is None:
        return FileResult(expected.name, theirs, ours, None, "every member is alike: the framing differs")
    return FileResult(expected.name, theirs, ours, difference.member or None, difference.detail)
