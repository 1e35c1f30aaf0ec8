"""Platforms side by side in the store: one name can hold an image for each architecture.

A name points at one image manifest while it holds one platform. When an image of another
architecture arrives under the same name (a pull or a build with another --arch), the name points at
an OCI image index instead, listing every platform's manifest, so switching --arch back and forth
finds each one in the store and never pulls again. A store view for an architecture (`Store(root,
arch)`) resolves such an index to its platform's manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..arches import DEFAULT_ARCH
from ..errors import StoreError
from ..fsutil import canonical_json
from ..spec.refs import ImageRef


class Store(Protocol):
    """What this module needs of the store (buildlib.store.images.Store), which imports this module: names
    and blobs, nothing of pulls or layers."""

    def has_blob(self, digest: str) -> bool: ...
    def blob_path(self, digest: str) -> Path: ...
    def put_blob(self, data: bytes) -> str: ...
    def read_json_blob(self, digest: str, what: str = "") -> dict[str, Any]: ...
    def named_digest(self, ref: ImageRef) -> str | None: ...
    def lookup(self, ref: ImageRef) -> str | None: ...
    def set_ref(self, ref: ImageRef, manifest_digest: str) -> None: ...


MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def manifest_for(store: Store, digest: str, arch: str) -> str | None:
    """The manifest a name's `digest` means on `arch`: the digest itself when it is one image (whatever its
    architecture: a pull decides what to do with that), the platform's entry of an index, None when the
    index has no such platform."""
    if not store.has_blob(digest):
        return digest
    try:
        top = store.read_json_blob(digest)
    except (OSError, ValueError, StoreError):
        return digest  # unreadable or corrupt: the caller's completeness check says it is absent
    entries = top.get("manifests")
    if not isinstance(entries, list):
        return digest
    for entry in entries:
        if (entry.get("platform") or {}).get("architecture") == arch:
            return str(entry["digest"])
    return None


def image_arch(store: Store, manifest_digest: str) -> str:
    """The architecture a stored image's config names (amd64 when it names none)."""
    manifest = store.read_json_blob(manifest_digest)
    config = store.read_json_blob(manifest["config"]["digest"])
    return str(config.get("architecture") or DEFAULT_ARCH)


def held_platforms(store: Store, ref: ImageRef) -> dict[str, str]:
    """Architecture -> manifest digest of every complete image the name `ref` holds now."""
    digest = store.named_digest(ref)
    if digest is None or not store.has_blob(digest):
        return {}
    top = store.read_json_blob(digest)
    if isinstance(top.get("manifests"), list):
        pairs = [((e.get("platform") or {}).get("architecture", DEFAULT_ARCH), e["digest"]) for e in top["manifests"]]
    else:
        pairs = [(image_arch(store, digest), digest)] if "config" in top else []
    return {arch: d for arch, d in pairs if store.lookup(ImageRef(ref.domain, ref.path, None, d)) is not None}


def add_platform(store: Store, ref: ImageRef, manifest_digest: str) -> None:
    """Point `ref` at `manifest_digest` for its architecture, keeping the images it holds for the others."""
    arch = image_arch(store, manifest_digest)
    others = {a: d for a, d in held_platforms(store, ref).items() if a != arch}
    if not others:
        store.set_ref(ref, manifest_digest)
        return
    others[arch] = manifest_digest
    store.set_ref(ref, put_index(store, others))


def index_manifests(store: Store, digest: str) -> list[str]:
    """The platform manifests of a stored index; `[digest]` for a single image."""
    top = store.read_json_blob(digest)
    entries = top.get("manifests")
    return [str(entry["digest"]) for entry in entries] if isinstance(entries, list) else [digest]


def put_index(store: Store, platforms: dict[str, str]) -> str:
    """Store an OCI image index of the images {architecture: manifest digest}; return its digest."""
    return store.put_blob(canonical_json(_index(store, platforms)))


def _index(store: Store, platforms: dict[str, str]) -> dict[str, Any]:
    order = sorted(platforms, key=lambda a: (a != DEFAULT_ARCH, a))  # amd64 first: what a plain lookup takes
    entries = [
        {
            "mediaType": MEDIA_MANIFEST,
            "digest": platforms[arch],
            "size": store.blob_path(platforms[arch]).stat().st_size,
            "platform": {"architecture": arch, "os": "linux"},
        }
        for arch in order
    ]
    return {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": entries}
