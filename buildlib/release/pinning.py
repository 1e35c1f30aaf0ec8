"""Pins asked of the world: a spec's lock made from its registries (skopeo) and the Debian archive (apt).

`lock` knows the file; `images` asks registries; `components` asks apt. This module decides which
entries of an existing lock stay (all of them unless they changed or `--update` names them) and which
are asked for again, so locking twice in a row changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import arches
from ..arches import arch_suffix
from ..debian import archive, recipes
from ..debian.recipes import Package, Recipe
from ..dockerfile import builder, buildyml
from ..errors import BadInput, BuildError
from ..fsutil import sha256_file
from ..outputs.efi import SECURE_BOOT_IMAGE
from ..spec.model import Spec
from ..spec.refs import ImageRef
from ..store import pulls
from ..store.images import Store
from ..store.transport import Network
from .lock import ComponentPin, ImagePin, Lock, Wanted, names_of, platform_of
from .lockpath import path_for


@dataclass(frozen=True)
class SpecInputs:
    """What a spec is made of: registry images (in spec order) and components (image reference -> recipe,
    for the architecture the spec was resolved for)."""

    images: tuple[str, ...]
    components: Mapping[str, Recipe] = field(hash=False)
    secure_boot: bool = False  # the signed loaders of --secure-boot are among the components

    def recipes(self, platforms: tuple[str, ...]) -> list[Recipe]:
        """Every component's recipe for each platform: each pins its own .deb files, under its build name."""
        wanted = dict.fromkeys(arches.normalise(platform) for platform in platforms)
        return [recipes.load_recipe(r.folder, arch) for arch in wanted for r in self.components.values()]

    def pin_names(self) -> dict[str, str]:
        """Every name a lock may pin the spec's components under, whatever the architecture -> that
        architecture (`kernel` -> amd64, `kernel-arm64` -> arm64)."""
        return {r.name + arch_suffix(arch): arch for r in self.components.values() for arch in arches.ARCHITECTURES}

    def wanted(self, platforms: tuple[str, ...]) -> Wanted:
        pins = {r.build_name: r.key for r in self.recipes(platforms)}
        # a lock may pin the signed loaders for the builds that ask for --secure-boot, whether this one does or not
        loaders = {SECURE_BOOT_IMAGE.rpartition("/")[2] + arch_suffix(arch) for arch in arches.ARCHITECTURES}
        return Wanted(self.images, pins, platforms, frozenset(self.pin_names()) | loaders)


def pins_secure_boot(lock: Lock) -> bool:
    """True when `lock` pins the signed loaders of --secure-boot (for some platform)."""
    name = SECURE_BOOT_IMAGE.rpartition("/")[2]
    return any(pinned == name or pinned.startswith(name + "-") for pinned in lock.components)


def secure_boot_image(resolver: recipes.PkgResolver) -> str:
    """The image reference of the signed loaders (components/secureboot, or the project's own)."""
    ref = resolver.named(SECURE_BOOT_IMAGE)
    if ref is None:
        raise BuildError(f"--secure-boot: no component builds {SECURE_BOOT_IMAGE} (components/secureboot is missing)")
    return ref


def spec_inputs(
    spec: Spec, component_root: Path, resolver: recipes.PkgResolver, secure_boot: bool = False
) -> SpecInputs:
    registry: list[str] = []
    built: dict[str, Recipe] = {}
    for ref in spec.images():
        if ref in resolver.packages:  # a LinuxKit package folder, built by buildah: its FROM images are pinned
            registry += builder.registry_bases(buildyml.load_package(resolver.packages[ref]))
            continue
        folder = recipes.folder_for(ref, component_root, resolver)
        if folder is None:
            registry.append(ref)
        else:
            built[ref] = recipes.load_recipe(folder, resolver.arch)
    if secure_boot:
        ref = secure_boot_image(resolver)
        built[ref] = recipes.load_recipe(resolver.folders[ref], resolver.arch)
    return SpecInputs(tuple(dict.fromkeys(registry)), built, secure_boot)


def locked_platforms(previous: Lock, inputs: SpecInputs) -> tuple[str, ...]:
    """The platforms a lock pins: its images' and those its component entries are named for (a spec of
    components alone pins no image, and `kernel-arm64` says arm64 as well)."""
    found = {platform for pin in previous.images.values() for platform in pin.platforms}
    found.update(platform_of(arch) for name, arch in inputs.pin_names().items() if name in previous.components)
    return tuple(sorted(found))


def lock_command(spec_files: tuple[str, ...], lock_file: str, previous: Lock, inputs: SpecInputs, platform: str) -> str:
    """The `distrokit lock` that pins what a build for `platform` needs, keeping the platforms the lock has."""
    platforms = locked_platforms(previous, inputs)
    words = ["distrokit", "lock", *spec_files]
    if spec_files and lock_file and Path(lock_file) != path_for(Path(spec_files[0])):
        words += ["--lock", lock_file]
    if inputs.secure_boot:
        words.append("--secure-boot")
    if platform not in platforms and (platforms or platform != platform_of(arches.DEFAULT_ARCH)):
        words += [f"--arch {arches.normalise(p)}" for p in (*platforms, platform)]
    return " ".join(words)


def make_lock(
    inputs: SpecInputs,
    platforms: tuple[str, ...],
    cache: Path,
    *,
    previous: Lock | None = None,
    update: Collection[str] | None = None,
    network: Network | None = None,
) -> Lock:
    """The lock of a spec: `previous` entries kept where they still fit, the rest asked for.

    `update` None keeps every entry that fits; empty asks for every entry again; names ask for those."""
    previous = previous or Lock()
    if update:
        unknown = sorted(set(update) - set(names_of(previous)) - _names_of(inputs, platforms))
        if unknown:
            raise BadInput(f"lock --update: {', '.join(unknown)} is no image or component of this spec")

    def renew(names: set[str]) -> bool:
        return update is not None and (not update or bool(names & set(update)))

    pinned_images: dict[str, ImagePin] = {}
    for ref in inputs.images:
        old = previous.images.get(ref)
        if old is not None and set(platforms) <= set(old.platforms) and not renew({ref, _familiar(ref)}):
            pinned_images[ref] = ImagePin(old.digest, {p: old.platforms[p] for p in platforms})
            continue
        remote = pulls.inspect_pins(ImageRef.parse(ref), platforms, network=network)
        pinned_images[ref] = ImagePin(remote.digest, remote.platforms)
    pinned_components: dict[str, ComponentPin] = {}
    for recipe in inputs.recipes(platforms):  # amd64's under NAME, another architecture's under NAME-ARCH
        kept = previous.packages(recipe.build_name, recipe.key)
        renewing = renew(_recipe_names(recipe))  # NAME renews every platform's, NAME-ARCH one
        if kept is None or renewing:
            kept = _component_packages(cache, recipe, refresh=renewing)
        pinned_components[recipe.build_name] = ComponentPin(recipe.key, tuple(sorted(kept, key=lambda p: p.name)))
    return Lock(pinned_images, pinned_components)


def _names_of(inputs: SpecInputs, platforms: tuple[str, ...]) -> set[str]:
    names = {name for ref in inputs.images for name in (ref, _familiar(ref))}
    for ref, recipe in inputs.components.items():
        names |= {ref, recipe.ref.familiar()}
    for recipe in inputs.recipes(platforms):
        names |= _recipe_names(recipe)
    return names


def _recipe_names(recipe: Recipe) -> set[str]:
    """What `lock --update` may call a component's entry for one architecture."""
    return {recipe.name, recipe.build_name, str(recipe.ref), recipe.ref.familiar()}


def _familiar(ref: str) -> str:
    return ImageRef.parse(ref).familiar()


def _component_packages(cache: Path, recipe: Recipe, refresh: bool) -> list[Package]:
    """A component's .deb files for a new lock entry: the store's pins (what it was built from) unless
    `refresh`, with size and architecture from the cached .deb or from apt; otherwise apt's newest."""
    cached = None if refresh else archive.cached_pins(cache, recipe)
    if cached is None:
        packages = archive.resolve_packages(recipe)
        archive.remember_pins(cache, recipe, packages)
        return packages
    if all(p.size and p.architecture for p in cached):
        return cached
    local = [_from_deb_file(cache, p) for p in cached]
    if all(p is not None for p in local):
        return [p for p in local if p is not None]
    return archive.describe_pinned(recipe, cached)


def _from_deb_file(cache: Path, package: Package) -> Package | None:
    deb = cache / "debs" / package.filename
    if not deb.is_file() or sha256_file(deb) != "sha256:" + package.sha256:
        return None
    arch = package.filename.removesuffix(".deb").rsplit("_", 1)[-1]
    return Package(package.name, package.version, package.filename, package.sha256, arch, deb.stat().st_size)


def pins_in_store(store: Store, inputs: SpecInputs, platform: str) -> Lock:
    """A lock of what `store` last built a spec from (its names and its .deb pins), for a spec with no
    lock file; an input the store has no pin for is left out (a build resolves it as usual). The store
    is seen from `platform`'s architecture and the components pinned for it, under their build names."""
    store = store.for_arch(arches.normalise(platform))
    pinned_images: dict[str, ImagePin] = {}
    for ref in inputs.images:
        digest = store.lookup(ImageRef.parse(ref))
        if digest is not None:
            pinned_images[ref] = ImagePin(digest, {platform: digest})
    pinned_components: dict[str, ComponentPin] = {}
    for recipe in inputs.recipes((platform,)):
        cached = archive.cached_pins(store.root, recipe)
        if cached is not None:
            pinned_components[recipe.build_name] = ComponentPin(recipe.key, tuple(cached))
    return Lock(pinned_images, pinned_components)
