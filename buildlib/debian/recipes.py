"""Component recipes: a folder, its `component.yml` read and checked, its content key and image name.

A recipe names the Debian packages to take per architecture, how to lay them out, the files to add and
the image config; its key is the folder's content, so its image is tagged `distrokit/NAME:KEY` and a
changed file builds a new one. `@pkg:FOLDER` in a spec resolves here (`PkgResolver`).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .. import arches
from ..arches import DEFAULT_ARCH, arch_suffix
from ..dockerfile import is_package_folder
from ..errors import ComponentError
from ..fsutil import xxh_tree
from ..lazy import lazy_module
from ..spec.refs import ImageRef
from . import kmodules, recipe_schema

if TYPE_CHECKING:  # only a spec naming a LinuxKit package folder reads a build.yml
    from ..dockerfile import buildyml
else:
    buildyml = lazy_module("buildlib.dockerfile.buildyml")

RECIPE = "component.yml"
IMAGE_PREFIX = "distrokit"
PACKAGES_LABEL = "org.distrokit.packages"
MOBY_LABEL = "org.mobyproject.config"
BUILDER_VERSION = "6"  # 2: the packages label names each .deb's sha256; 3: and its architecture; 4: a default PATH;
# 5: a service image gets its closure's conffiles, base folders, accounts and postinst links
# 6: depmod's files in modules.order (they were in the order the file system listed the folders in)


@dataclass(frozen=True)
class RecipeFile:
    """A file a component adds to its image, after defaults."""

    path: str
    source: str | None = None
    contents: str | None = None
    mode: int = 0o644
    symlink: str | None = None
    directory: bool = False
    concat: str | None = None  # a glob in the unpacked packages: the file is their concatenation, sorted


@dataclass(frozen=True)
class Recipe:
    """A component: what component.yml asks for, with defaults, and its image reference."""

    folder: Path
    name: str
    packages: tuple[str, ...] = ()
    follow: tuple[str, ...] = ()
    layout: str = "root"
    keep: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    busybox_links: bool = False
    depends: bool = True  # take the packages' dependency closure from apt
    whole_packages: bool = False  # keep every file of every package, not just what the named ones need
    files: tuple[RecipeFile, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    modules: tuple[str, ...] = (kmodules.ALL,)  # the kernel layout's modules to keep (see kmodules)
    arch: str = DEFAULT_ARCH  # the Debian architecture the image is built for

    @property
    def key(self) -> str:
        """The recipe's content key; it is the image's tag (with the architecture's name beyond amd64)."""
        return _folder_key(self.folder)

    @property
    def tag(self) -> str:
        return self.key + arch_suffix(self.arch)

    @property
    def build_name(self) -> str:
        """The recipe's name with its architecture beyond amd64: names its build task and its pins."""
        return self.name + arch_suffix(self.arch)

    @property
    def pin_name(self) -> str:
        """`NAME-KEY[-ARCH]`: names the recipe's package pins and build record in the store."""
        return f"{self.name}-{self.key}{arch_suffix(self.arch)}"

    @property
    def ref(self) -> ImageRef:
        return ImageRef.parse(f"{IMAGE_PREFIX}/{self.name}:{self.tag}")


@dataclass(frozen=True)
class Package:
    """One .deb file: what apt names it, its SHA256 (hex) and, when known, its architecture and size."""

    name: str
    version: str
    filename: str
    sha256: str
    architecture: str = ""
    size: int = 0


def load_recipe(folder: Path, arch: str = DEFAULT_ARCH) -> Recipe:
    folder = Path(folder).resolve()
    recipe_file = folder / RECIPE
    if not recipe_file.is_file():
        raise ComponentError(f"{folder}: no {RECIPE} here, so it is not a distrokit component")
    return _load_recipe(folder, recipe_file.stat().st_mtime_ns, arches.normalise(arch))


@functools.lru_cache(maxsize=64)
def _load_recipe(folder: Path, mtime_ns: int, arch: str) -> Recipe:
    """Parse a recipe once per process (and again when its file changes)."""
    recipe_file = folder / RECIPE
    text = recipe_file.read_text()
    recipe_schema.check_recipe(text, recipe_file)
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    files = tuple(
        RecipeFile(
            path=item["path"],
            source=item.get("source"),
            contents=item.get("contents"),
            mode=int(str(item.get("mode", "0755" if item.get("directory") else "0644")), 8),
            symlink=item.get("symlink"),
            directory=bool(item.get("directory", False)),
            concat=item.get("concat"),
        )
        for item in raw.get("files") or ()
    )
    return Recipe(
        folder=folder,
        name=raw.get("name") or folder.name,
        packages=arch_packages(raw, "packages", arch),
        follow=arch_packages(raw, "follow", arch),
        layout=raw.get("layout", "root"),
        keep=tuple(raw.get("keep") or ()),
        exclude=tuple(raw.get("exclude") or ()),
        busybox_links=bool(raw.get("busybox-links", False)),
        depends=bool(raw.get("depends", True)),
        whole_packages=bool(raw.get("whole-packages", False)),
        files=files,
        config=dict(raw.get("config") or {}),
        modules=_modules_field(raw.get(f"modules-{arch}", raw.get("modules", kmodules.ALL)), recipe_file),
        arch=arch,
    )


def arch_packages(raw: Mapping[str, Any], key: str, arch: str) -> tuple[str, ...]:
    """A recipe's package list for `arch`: `KEY-ARCH:` when the recipe has one, `KEY:` otherwise, with
    `{arch}` in a name replaced by the architecture (`linux-image-cloud-{arch}`)."""
    names = raw.get(f"{key}-{arch}")
    if names is None:
        names = raw.get(key)
    return tuple(str(name).replace("{arch}", arch) for name in names or ())


def _modules_field(value: Any, recipe_file: Path) -> tuple[str, ...]:
    """`modules: all` (the default) or a list of module names and globs."""
    if value == kmodules.ALL:
        return (kmodules.ALL,)
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ComponentError(f"{recipe_file}: modules: give `all` or a list of module names or globs, e.g. [virtio*]")
    return tuple(value)


_FOLDER_KEYS: dict[Path, tuple[tuple[tuple[str, int, int, int, int], ...], str]] = {}


def _folder_key(folder: Path) -> str:
    """xxh_tree of a component folder, hashed again only when one of its files changes: a build asks
    for each recipe's key dozens of times."""
    signature = _folder_signature(folder)
    known = _FOLDER_KEYS.get(folder)
    if known is None or known[0] != signature:
        known = (signature, xxh_tree(folder)[:16])
        _FOLDER_KEYS[folder] = known
    return known[1]


def _folder_signature(folder: Path) -> tuple[tuple[str, int, int, int, int], ...]:
    entries = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            entries.append((os.path.join(top, name), st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sorted(entries))


def builtin_components() -> Path:
    """The recipes that come with distrokit: inside the installed package (a wheel carries them as
    buildlib/builtin_components), else components/ beside buildlib/ in a checkout or editable install."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "builtin_components"
    return installed if installed.is_dir() else package.parent / "components"


class PkgResolver:
    """Resolves `@pkg:FOLDER`, and `distrokit/NAME` (no tag or :latest), to the component's image reference,
    remembering which folder made which. `distrokit/NAME` is the project's own components/NAME (the
    `components` folder given) when there is one, else the built-in recipe NAME."""

    def __init__(self, arch: str = DEFAULT_ARCH, components: Path | None = None) -> None:
        self.folders: dict[str, Path] = {}
        self.packages: dict[str, Path] = {}  # LinuxKit package folders (build.yml + Dockerfile), by the ref they give
        self.arch = arches.normalise(arch)
        self._refs: dict[str, str] = {}  # a folder is hashed once per plan, however many specs name it
        self.roots = tuple(dict.fromkeys(p for p in (components, builtin_components()) if p is not None))

    def origin(self, ref: str) -> str:
        """Where an image the spec names comes from, in words (what `validate` says of each)."""
        if ref in self.packages:
            return f"LinuxKit package {self.packages[ref]}, built by buildah"
        folder = self.folders.get(ref)
        if folder is None:
            return f"pulled from {ImageRef.parse(ref).domain}"
        if folder.resolve().parent == builtin_components().resolve():
            return f"built-in component {folder.name}"
        return f"component {folder}"

    def named(self, text: str) -> str | None:
        """The reference a plain `distrokit/NAME` builds, or None when it names no component of ours."""
        folder = self.component_named(text)
        return self(folder) if folder is not None else None

    def component_named(self, text: str) -> Path | None:
        ref = ImageRef.parse(text)
        if ref.domain != "docker.io" or ref.digest or ref.tag not in (None, "latest"):
            return None
        return self.recipe_folder(ref)

    def recipe_folder(self, ref: ImageRef) -> Path | None:
        prefix, _, name = ref.path.partition("/")
        if prefix != IMAGE_PREFIX or not name or "/" in name:
            return None
        return next((root / name for root in self.roots if (root / name / RECIPE).is_file()), None)

    def __call__(self, folder: Path) -> str:
        absolute = os.path.abspath(folder)
        if is_package_folder(folder) and not (Path(folder) / RECIPE).is_file():
            package_ref = str(buildyml.load_package(folder).ref)
            self.packages[package_ref] = Path(folder)
            return package_ref
        ref = self._refs.get(absolute)
        if ref is None:
            ref = self._refs[absolute] = str(load_recipe(folder, self.arch).ref)
        self.folders[ref] = Path(folder)
        return ref


def folder_for(ref: str, component_root: Path, resolver: PkgResolver) -> Path | None:
    """The component folder that builds `ref`: from an `@pkg:` template, or components/NAME for distrokit/NAME."""
    if ref in resolver.folders:
        return resolver.folders[ref]
    parsed = ImageRef.parse(ref)
    if parsed.domain != "docker.io":
        return None
    prefix, _, name = parsed.path.partition("/")
    if prefix == IMAGE_PREFIX and name and (component_root / name / RECIPE).is_file():
        return component_root / name
    return resolver.recipe_folder(parsed)


def recorded_packages(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The Debian packages (name, version) an image records in its labels; none for other images."""
    return [(item[0], item[1]) for item in json.loads(labels.get(PACKAGES_LABEL, "[]"))]


def recorded_checksums(labels: Mapping[str, str]) -> dict[str, str]:
    """The SHA256 (hex) of each .deb a component image was built from, by package name (images built
    before builder 2 record none)."""
    return {item[0]: item[2] for item in json.loads(labels.get(PACKAGES_LABEL, "[]")) if len(item) > 2}


def deb_arch(package: Package) -> str:
    """A .deb's architecture (`all` for architecture-independent ones): apt's word, else its file name's."""
    return package.architecture or package.filename.removesuffix(".deb").rsplit("_", 1)[-1]


def recorded_architectures(labels: Mapping[str, str], default: str) -> dict[str, str]:
    """The architecture of each .deb a component image was built from, by package name (images built before
    builder 3 record none: `default`, the image's own, stands in)."""
    items = json.loads(labels.get(PACKAGES_LABEL, "[]"))
    return {item[0]: item[3] if len(item) > 3 else default for item in items}


PIN_FIELDS = ("version", "sha256", "architecture")


def pin_differences(image: str, packages: list[Package], labels: Mapping[str, str]) -> list[str]:
    """How the .deb files an image records in its labels differ from `packages` (a lock's pins): one line
    per package and field, both values in full, so two hashes alike in their first digits never read the
    same; empty when the image records exactly these. An image that records no sha256 or architecture (an
    older builder's) cannot prove it was built from the pins, so it differs too."""
    recorded = {
        str(item[0]): [str(value) for value in item[1:4]] for item in json.loads(labels.get(PACKAGES_LABEL, "[]"))
    }
    lines = []
    for package in packages:
        stored = recorded.pop(package.name, None)
        if stored is None:
            lines.append(f"{package.name}: pinned at {package.version}, but {image} was not built from it")
            continue
        pinned = (package.version, package.sha256, deb_arch(package))
        for what, want, have in zip(PIN_FIELDS, pinned, [*stored, "", ""][:3], strict=True):
            if want != have:
                lines.append(
                    f"{package.name} {what}: pinned {want}, but {image} was built from {have or 'none recorded'}"
                )
    lines.extend(
        f"{name}: {image} was built from it ({stored[0]}), but it is not pinned"
        for name, stored in sorted(recorded.items())
    )
    return lines


def recipe_input_key(recipe: Recipe, packages: list[Package]) -> dict[str, Any]:
    """Everything the image bytes depend on: the recipe, the exact .deb files, this builder."""
    return {
        "recipe": recipe.key,
        "packages": [[p.filename, p.sha256] for p in packages],
        "builder": BUILDER_VERSION,
    }
