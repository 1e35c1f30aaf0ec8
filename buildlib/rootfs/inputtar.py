"""`build --input-tar FILE`: the entries of a previous build's tar standing in for images not pulled.

LinuxKit's tar tags every entry with the image it came from (`LINUXKIT.source`) and the place in the
spec it went (`LINUXKIT.location`). An image of the spec that only containers and volumes use, and
whose every place is in the tar under that image's full reference, is taken from the tar: the parts of
those places are built from the tar's entries, and the image is never pulled. Its manifest digest (for
`installed` and the SBOMs) is the one the tar's own /etc/distrokit/installed names; an image the tar
does not name a digest for, or names one the spec (`@sha256:`), the lock or the store disagrees with,
is pulled as without the flag. The kernel and init images are always pulled: their files are spread
over parts the tar cannot cut apart again (the files section copies init's folders).
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from ..debian.recipes import PACKAGES_LABEL
from ..errors import BadInput
from ..spec.model import Spec
from ..spec.refs import ImageRef
from . import placement
from .layers import HARDLINK, Entry, tar_member_entry
from .origins import LOCATION_HEADER, SOURCE_HEADER, VOLUMES_SOURCE, full_reference
from .parts import BUNDLE_KIND, IMAGE_KIND, INSTALLED_PATH, VOLUME_KIND, Part
from .sbom import SBOM_PATH
from .tree import Tree

Place = tuple[str, str]  # (LINUXKIT.source, LINUXKIT.location)


@dataclass(frozen=True)
class InputTar:
    """A previous build's tar: its entries by place, and what its installed list says of each image."""

    path: Path
    places: Mapping[Place, tuple[Entry, ...]]
    keys: Mapping[Place, str]  # each place's content (headers and data), the key of the parts built from it
    installed: Mapping[str, tuple[str, list[list[str]]]]  # familiar name -> manifest digest, packages


def read_input_tar(path: Path) -> InputTar:
    """Every entry of the tar that carries LinuxKit's headers, grouped by place; a one-line error for a
    file that is not a readable tar."""
    places: dict[Place, list[Entry]] = {}
    hashers: dict[Place, Any] = {}
    extra: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:") as archive, open(path, "rb") as data:
            for member in archive:
                _take(member, data, places, hashers, extra, str(path))
    except (OSError, tarfile.TarError, UnicodeError) as error:
        raise BadInput(f"--input-tar {path}: not a readable tar ({error})") from error
    return InputTar(
        path,
        {place: tuple(entries) for place, entries in places.items()},
        {place: hasher.hexdigest() for place, hasher in hashers.items()},
        _installed(extra.get(INSTALLED_PATH, b""), extra.get(SBOM_PATH, b"")),
    )


def _take(
    member: tarfile.TarInfo,
    data: Any,
    places: dict[Place, list[Entry]],
    hashers: dict[Place, Any],
    extra: dict[str, bytes],
    source: str,
) -> None:
    entry = tar_member_entry(member, source, f"--input-tar {source}")
    if entry is None:
        return
    if entry.path in (INSTALLED_PATH, SBOM_PATH):
        data.seek(member.offset_data)
        extra[entry.path] = data.read(member.size)
    place = (member.pax_headers.get(SOURCE_HEADER, ""), member.pax_headers.get(LOCATION_HEADER, ""))
    if not place[0] or not place[1]:
        return
    places.setdefault(place, []).append(entry)
    hasher = hashers.setdefault(place, xxhash.xxh3_128())
    hasher.update(repr(entry).encode())
    data.seek(member.offset_data)
    for chunk in entry.read_chunks():
        hasher.update(chunk)


def _installed(installed: bytes, sbom: bytes) -> dict[str, tuple[str, list[list[str]]]]:
    """The images /etc/distrokit/installed lists (`NAME DIGEST`, then `  PACKAGE VERSION ARCH` lines),
    with each package's .deb checksum from the tar's SBOM where it has one."""
    checksums = _sbom_checksums(sbom)
    found: dict[str, tuple[str, list[list[str]]]] = {}
    packages: list[list[str]] = []
    for line in installed.decode(errors="replace").splitlines():
        words = line.split()
        if len(words) == 2 and not line.startswith(" "):
            packages = []
            found[words[0]] = (words[1], packages)
        elif len(words) == 3 and packages is not None:
            name, version, arch = words
            packages.append([name, version, checksums.get((name, version), ""), arch])
    return found


def _sbom_checksums(sbom: bytes) -> dict[tuple[str, str], str]:
    try:
        document = json.loads(sbom) if sbom else {}
    except ValueError:
        return {}
    return {
        (package["name"], package.get("versionInfo", "")): package["checksums"][0]["checksumValue"]
        for package in document.get("packages", ())
        if package.get("supplier") == "Organization: Debian" and package.get("checksums")
    }


# which images the tar stands in for ------------------------------------------------------------
def places_of(spec: Spec, ref: str) -> list[str] | None:
    """The locations at which the spec uses `ref`, or None when the kernel or init uses it."""
    if (spec.kernel is not None and spec.kernel.image == ref) or ref in spec.init:
        return None
    locations = [f"volume[{index}]" for index, volume in enumerate(spec.volumes) if volume.image == ref]
    for container in spec.containers():
        if container.image == ref:
            locations.append(f"{container.section.value}[{container.index}]")
    return locations


def tar_record(
    spec: Spec, tar: InputTar, ref: str, arch: str, known_digest: Callable[[str], str | None]
) -> dict[str, Any] | None:
    """The record of `ref` taken from the tar (as the store records a pulled image, plus where its
    entries are), or None when it must be pulled: a place missing, no digest in the tar, or a digest
    that disagrees with the reference, the lock or the store (`known_digest`)."""
    locations = places_of(spec, ref)
    source = full_reference(ref)
    if not locations or any((source, location) not in tar.places for location in locations):
        return None
    named = tar.installed.get(ImageRef.parse(ref).familiar())
    if named is None:
        return None
    digest, packages = named
    wanted = ImageRef.parse(ref).digest or known_digest(ref)
    if wanted is not None and wanted != digest:
        return None
    labels = {PACKAGES_LABEL: json.dumps(packages)} if packages else {}
    return {
        "ref": ref,
        "manifest": digest,
        "config": "",
        "layers": [],
        "input_tar": {
            "path": str(tar.path.resolve()),
            "config": {"architecture": arch, "config": {"Labels": labels}},
            "places": {location: tar.keys[(source, location)] for location in locations},
        },
    }


# the parts built from the tar ----------------------------------------------------------------------
def part_place(spec: Spec, part: Part) -> Place:
    """The place in the tar whose entries a container's or a volume's part is built from."""
    if part.family == VOLUME_KIND:
        index = next(i for i, volume in enumerate(spec.volumes) if volume.name == part.subject)
        return full_reference(spec.volumes[index].image or ""), f"volume[{index}]"
    container = placement.find_slot(spec, part.subject).container
    return full_reference(container.image), f"{container.section.value}[{container.index}]"


def part_tree(tar: InputTar, spec: Spec, part: Part, want_key: str) -> Tree:
    """A part's tree out of the tar: a container's image part takes its owner's image folder (lower/ or
    rootfs/), its bundle part the rest of its place; a volume part its place and the folders the build
    made for it (`linuxkit.volumes`)."""
    place = part_place(spec, part)
    if tar.keys.get(place) != want_key:
        raise BadInput(f"--input-tar {tar.path}: the entries of {place[1]} ({place[0]}) changed during the build")
    entries = list(tar.places[place])
    if part.family == VOLUME_KIND:
        entries += tar.places.get((VOLUMES_SOURCE, place[1]), ())
    elif part.family in (IMAGE_KIND, BUNDLE_KIND):
        slot = placement.find_slot(spec, part.subject)
        roots = (posixpath.join(slot.prefix, "lower"), posixpath.join(slot.prefix, "rootfs"))
        inside = [entry for entry in entries if _under(entry.path, roots)]
        if part.family == IMAGE_KIND:
            entries = inside
        elif slot.owns_image:  # else there is no image part: the bundle's place is all its own
            entries = [entry for entry in entries if not _under(entry.path, roots)]
    tree = Tree(part.name)
    tree.extend(list(_linked_in_order(entries)), f"--input-tar {tar.path}")
    return tree


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def _linked_in_order(entries: list[Entry]) -> Iterator[Entry]:
    """The entries, a hard link kept only when its target is among them (it is, in a tar we wrote)."""
    paths = {entry.path for entry in entries}
    for entry in entries:
        if entry.kind != HARDLINK or entry.link in paths:
            yield entry
