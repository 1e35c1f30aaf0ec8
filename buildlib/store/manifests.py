"""Checks of an image's manifest and config, which come from registries nobody here controls.

Pure functions from parsed JSON to checked values: every problem is one `BadImage` line naming the
image and the field (`layers[2].size`, `config.Env`), never a KeyError or a TypeError further on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import BadImage

MEDIA_MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
MEDIA_INDEXES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MEDIA_CONFIGS = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
MEDIA_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
MAX_JSON_BLOB = 4 << 20  # a manifest or config bigger than this is no honest one
MAX_LAYERS = 1000  # far above any real image (Docker stops at 127 for overlay's sake)
MAX_BLOB_SIZE = 1 << 44  # 16 TiB: a size past this is a lie whatever the layer size limit is
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Descriptor:
    """An OCI descriptor: what a manifest says of one blob."""

    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """An image manifest: its config blob and its layers, in order."""

    config: Descriptor
    layers: tuple[Descriptor, ...]


def parse_json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from a manifest or config blob."""
    import json

    if len(data) > MAX_JSON_BLOB:
        raise BadImage(f"{what} is {len(data)} bytes, more than any manifest or config holds")
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadImage(f"{what} is not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise BadImage(f"{what} is not a JSON object")
    return value


def check_manifest(value: dict[str, Any], image: str) -> Manifest:
    """The config and layers of an image manifest, each descriptor checked."""
    media = value.get("mediaType")
    if media in MEDIA_INDEXES or "manifests" in value:
        raise BadImage(f"image {image}: mediaType: a multi-platform index where one image's manifest was expected")
    if media is not None and media not in MEDIA_MANIFESTS:
        raise BadImage(f"image {image}: mediaType: {media!r} is not an image manifest")
    if value.get("schemaVersion") != 2:
        raise BadImage(f"image {image}: schemaVersion: {value.get('schemaVersion')!r}, only 2 is supported")
    config = _descriptor(value.get("config"), image, "config", MEDIA_CONFIGS)
    layers = value.get("layers")
    if not isinstance(layers, list):
        raise BadImage(f"image {image}: layers: must be a list")
    if len(layers) > MAX_LAYERS:
        raise BadImage(f"image {image}: layers: {len(layers)} layers, more than {MAX_LAYERS}")
    return Manifest(
        config, tuple(_descriptor(item, image, f"layers[{i}]", MEDIA_LAYERS) for i, item in enumerate(layers))
    )


def _descriptor(value: Any, image: str, field: str, media_types: tuple[str, ...]) -> Descriptor:
    if not isinstance(value, dict):
        raise BadImage(f"image {image}: {field}: must be a descriptor object")
    media, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media, str) or media not in media_types:
        raise BadImage(f"image {image}: {field}.mediaType: {media!r} is not one distrokit knows for this field")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise BadImage(f"image {image}: {field}.digest: {digest!r} is not a sha256 digest")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_BLOB_SIZE:
        raise BadImage(f"image {image}: {field}.size: {size!r} is not a possible size")
    return Descriptor(media, digest, size)


def check_config(value: dict[str, Any], image: str, layer_count: int) -> tuple[str, ...]:
    """The diff_ids of an image config, after checking the fields a build reads have the right types."""
    rootfs = value.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIGEST.match(d) for d in diff_ids):
        raise BadImage(f"image {image}: rootfs.diff_ids: must be a list of sha256 digests")
    if len(diff_ids) != layer_count:
        raise BadImage(f"image {image}: rootfs.diff_ids: {len(diff_ids)} layers, but its manifest has {layer_count}")
    for name in ("architecture", "os"):
        if name in value and not isinstance(value[name], str):
            raise BadImage(f"image {image}: {name}: must be a string")
    runtime = value.get("config")
    if runtime is None:
        return tuple(diff_ids)
    if not isinstance(runtime, dict):
        raise BadImage(f"image {image}: config: must be an object")
    for name in ("Entrypoint", "Cmd", "Env"):
        if runtime.get(name) is not None and not _strings(runtime[name]):
            raise BadImage(f"image {image}: config.{name}: must be a list of strings")
    if runtime.get("WorkingDir") is not None and not isinstance(runtime["WorkingDir"], str):
        raise BadImage(f"image {image}: config.WorkingDir: must be a string")
    labels = runtime.get("Labels")
    if labels is not None and not (isinstance(labels, dict) and all(isinstance(v, str) for v in labels.values())):
        raise BadImage(f"image {image}: config.Labels: must map names to strings")
    return tuple(diff_ids)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
