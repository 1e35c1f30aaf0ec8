"""The lock file: every input of a spec pinned, in a file meant to be committed beside it.

`specs/minimal.yml` locks to `specs/minimal.lock`: JSON with sorted keys and one value per line, so a
diff shows exactly which pin moved. An image reference is pinned to the digest its tag named when it
was locked (an index or a manifest) and to the manifest digest of each platform asked for; a component
(`@pkg:` or `distrokit/NAME`) to its recipe key and the exact .deb files (name, version, architecture,
size, sha256) it is built from, once per platform: amd64's under NAME (as locks always had it), another
architecture's under NAME-ARCH (`kernel-arm64`), the name its build task has. This module knows the
format and compares a lock with what a spec needs; asking registries and apt for pins is `pinning`'s job,
using them is `tasks`'.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..debian.recipes import Package
from ..errors import BadInput
from ..fsutil import write_bytes_atomic
from ..spec.refs import ImageRef

LOCK_VERSION = 1
_PACKAGE_FIELDS = ("name", "version", "architecture", "size", "sha256", "filename")


@dataclass(frozen=True)
class ImagePin:
    """A registry image: what its tag named when locked, and the manifest of each platform ("linux/amd64")."""

    digest: str
    platforms: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class ComponentPin:
    """A component image: its recipe's key and the .deb files it is built from, sorted by name."""

    recipe: str
    packages: tuple[Package, ...]


@dataclass(frozen=True)
class Lock:
    """A lock file: the pinned digest of every image and the pinned packages of every component."""

    images: Mapping[str, ImagePin] = field(default_factory=dict, hash=False)
    components: Mapping[str, ComponentPin] = field(default_factory=dict, hash=False)

    def manifest(self, ref: str, platform: str) -> str | None:
        """The manifest digest pinned for `ref` on `platform`, or None when the lock has no such pin."""
        pin = self.images.get(ref)
        return pin.platforms.get(platform) if pin else None

    def packages(self, name: str, recipe_key: str) -> list[Package] | None:
        """The .deb files pinned for component `name` when its recipe is still the one locked, else None."""
        pin = self.components.get(name)
        return list(pin.packages) if pin is not None and pin.recipe == recipe_key else None

    def pinned_digests(self) -> dict[str, str]:
        """Every image digest the lock pins, for the SBOM: "REF" -> tag digest, "REF PLATFORM" -> manifest."""
        found: dict[str, str] = {}
        for ref, pin in self.images.items():
            found[ref] = pin.digest
            found.update({f"{ref} {platform}": digest for platform, digest in pin.platforms.items()})
        return found


@dataclass(frozen=True)
class Wanted:
    """What a spec needs pinned: its registry images, its components (pin name -> recipe key), the platforms.

    `pin_names` are the names the spec's components may be pinned under for any architecture: a lock that
    pins more platforms than a build wants holds entries the spec still uses."""

    images: tuple[str, ...]
    components: Mapping[str, str] = field(hash=False)
    platforms: tuple[str, ...]
    pin_names: frozenset[str] = frozenset()


def platform_of(arch: str) -> str:
    return arch if "/" in arch and arch.startswith("linux/") else f"linux/{arch}"


# the file -----------------------------------------------------------------------------------
def render(lock: Lock) -> bytes:
    """The file's bytes: sorted keys, two-space indents, a newline at the end."""
    document = {
        "version": LOCK_VERSION,
        "images": {
            ref: {"digest": pin.digest, "platforms": dict(sorted(pin.platforms.items()))}
            for ref, pin in sorted(lock.images.items())
        },
        "components": {
            name: {
                "recipe": pin.recipe,
                "packages": [_package_record(p) for p in sorted(pin.packages, key=lambda p: p.name)],
            }
            for name, pin in sorted(lock.components.items())
        },
    }
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def _package_record(package: Package) -> dict[str, Any]:
    record = asdict(package)
    return {key: record[key] for key in _PACKAGE_FIELDS}


def write(path: Path, lock: Lock) -> bool:
    """Write the lock atomically; False (and nothing written) when the file already holds these bytes."""
    data = render(lock)
    if path.is_file() and path.read_bytes() == data:
        return False
    write_bytes_atomic(path, data)
    return True


def read(path: Path) -> Lock:
    """Read a lock file; BadInput naming the file and the entry when it is not one."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise BadInput(f"{path}: no such lock file: write it with `distrokit lock SPEC`") from None
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: not a distrokit lock file ({exc}): write it again with `distrokit lock SPEC`") from exc
    if not isinstance(document, dict) or document.get("version") != LOCK_VERSION:
        raise BadInput(f"{path}: not a version {LOCK_VERSION} distrokit lock: write it again with `distrokit lock`")
    try:
        images = {
            str(ref): ImagePin(str(entry["digest"]), {str(k): str(v) for k, v in entry["platforms"].items()})
            for ref, entry in (document.get("images") or {}).items()
        }
        components = {
            str(name): ComponentPin(str(entry["recipe"]), tuple(_package(item) for item in entry["packages"]))
            for name, entry in (document.get("components") or {}).items()
        }
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        what = f"no {exc.args[0]}" if isinstance(exc, KeyError) and exc.args else str(exc)
        raise BadInput(f"{path}: a malformed entry ({what}): write it again with `distrokit lock --update`") from exc
    return Lock(images, components)


def _package(item: Mapping[str, Any]) -> Package:
    return Package(
        name=str(item["name"]),
        version=str(item["version"]),
        filename=str(item["filename"]),
        sha256=str(item["sha256"]),
        architecture=str(item["architecture"]),
        size=int(item["size"]),
    )


# spec against lock --------------------------------------------------------------------------
def disagreements(lock: Lock, wanted: Wanted, where: Path | str) -> list[str]:
    """Every way the spec and its lock disagree, one line each naming the entry (empty when they agree)."""
    found: list[str] = []
    for ref in wanted.images:
        pin = lock.images.get(ref)
        if pin is None:
            found.append(f"image {_familiar(ref)} is not pinned in {where}")
            continue
        found.extend(
            f"image {_familiar(ref)}: {where} pins no {platform} image"
            for platform in wanted.platforms
            if platform not in pin.platforms
        )
    for name, key in sorted(wanted.components.items()):
        component = lock.components.get(name)
        if component is None:
            found.append(f"component {name} is not pinned in {where}")
        elif component.recipe != key:
            found.append(f"component {name}: its recipe changed ({where} pins {component.recipe}, it is now {key})")
    found.extend(
        f"{where} pins image {_familiar(ref)}, which the spec no longer uses"
        for ref in sorted(set(lock.images) - set(wanted.images))
    )
    found.extend(
        f"{where} pins component {name}, which the spec no longer uses"
        for name in sorted(set(lock.components) - set(wanted.components) - wanted.pin_names)
    )
    return found


def _familiar(ref: str) -> str:
    return ImageRef.parse(ref).familiar()


def names_of(lock: Lock) -> Iterable[str]:
    """Every name `lock --update NAME` accepts: component names, image references (full and familiar)."""
    yield from lock.components
    for ref in lock.images:
        yield ref
        yield _familiar(ref)
