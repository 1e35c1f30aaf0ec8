"""Where each entry of the root came from, as LinuxKit's tar records it in two PAX headers.

`LINUXKIT.source` is the image an entry came from (its reference written out in full, as
`docker.io/library/alpine:3.19`) or a word for what the build made itself (`linuxkit.files`,
`linuxkit.volumes`); `LINUXKIT.location` is the place in the spec (`kernel`, `init[0]`, `onboot[1]`,
`services[0]`, `volume[0]`, `files[2]`). The values are LinuxKit's, so its tools (and `build
--input-tar`) read our tar as theirs. LinuxKit writes its SBOM with no headers; ours carries
`linuxkit.sbom`, and the files distrokit adds of its own carry `distrokit.generated`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..spec.model import Spec
from ..spec.refs import ImageRef
from ..store.images import Image, Store
from . import placement
from .layers import load_index
from .sbom import LINUXKIT_SBOM_PATH, SBOM_PATH

SOURCE_HEADER = "LINUXKIT.source"
LOCATION_HEADER = "LINUXKIT.location"
FILES_SOURCE = "linuxkit.files"
VOLUMES_SOURCE = "linuxkit.volumes"
EMPTY_SOURCE = "empty"  # LinuxKit's source for the folders of a volume without an image
SBOM_SOURCE = "linuxkit.sbom"
GENERATED_SOURCE = "distrokit.generated"


@dataclass(frozen=True)
class Origin:
    """One entry's source and location, as LinuxKit's PAX headers give them."""

    source: str
    location: str

    def pax_headers(self) -> dict[str, str]:
        return {SOURCE_HEADER: self.source, LOCATION_HEADER: self.location}

    @property
    def from_image(self) -> bool:
        """Whether the entry came from an image (rather than from the build itself)."""
        return "/" in self.source


@dataclass(frozen=True)
class PartOrigins:
    """The origins of one part's entries: `paths` where they differ from the part's `default`."""

    default: Origin
    paths: Mapping[str, Origin] = field(default_factory=dict)

    def of(self, path: str) -> Origin:
        return self.paths.get(path, self.default)


def full_reference(ref: str) -> str:
    """An image reference as LinuxKit writes it in LINUXKIT.source: every part spelt out."""
    return str(ImageRef.parse(ref))


def part_origins(store: Store, spec: Spec, family: str, subject: str, images: Mapping[str, Image]) -> PartOrigins:
    """The origins of a part's entries, by its family (see parts.Part) and subject."""
    if family == "kernel":
        assert spec.kernel is not None
        return PartOrigins(Origin(full_reference(spec.kernel.image), "kernel"))
    if family == "init":
        return _init_origins(store, spec, images)
    if family == "volume":
        return _volume_origins(spec, subject)
    if family in ("image", "bundle"):
        container = placement.find_slot(spec, subject).container
        return PartOrigins(Origin(full_reference(container.image), f"{container.section.value}[{container.index}]"))
    return files_origins(spec)


def _init_origins(store: Store, spec: Spec, images: Mapping[str, Image]) -> PartOrigins:
    """Each path of the init part comes from the last init image that has it, as they are merged."""
    origins = [Origin(full_reference(ref), f"init[{index}]") for index, ref in enumerate(spec.init)]
    paths: dict[str, Origin] = {}
    if len(origins) > 1:
        for ref, origin in zip(spec.init, origins, strict=True):
            for layer in images[ref].layers:
                paths.update(dict.fromkeys((entry.path for entry in load_index(store, layer, ref)), origin))
    return PartOrigins(origins[0], paths)


def _volume_origins(spec: Spec, name: str) -> PartOrigins:
    """lower/ and the image's files from the image (`empty` without one); tmp/ and merged/ made by the build."""
    index, volume = next((i, v) for i, v in enumerate(spec.volumes) if v.name == name)
    location = f"volume[{index}]"
    base = placement.volume_dir(volume)
    made = Origin(VOLUMES_SOURCE, location)
    paths = {posixpath.join(base, "tmp"): made, posixpath.join(base, "merged"): made}
    source = full_reference(volume.image) if volume.image is not None else EMPTY_SOURCE
    return PartOrigins(Origin(source, location), paths)


def files_origins(spec: Spec) -> PartOrigins:
    """Each `files` entry and the parents it made: `files[N]` of the first entry that needed the folder,
    as LinuxKit writes them; what distrokit adds (installed list, SBOMs) is the build's own."""
    paths = dict.fromkeys((LINUXKIT_SBOM_PATH, SBOM_PATH), Origin(SBOM_SOURCE, "sbom"))
    for index, item in enumerate(spec.files):
        path = posixpath.normpath(item.path.strip("/"))
        origin = Origin(FILES_SOURCE, f"files[{index}]")
        for parent in _parents(path):
            paths.setdefault(parent, origin)
        paths[path] = origin
    return PartOrigins(Origin(GENERATED_SOURCE, "files"), paths)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
