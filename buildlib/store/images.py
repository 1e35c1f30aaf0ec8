"""The content-addressed image store: blobs by digest, names pointing at manifests (pulls: buildlib.store.pulls).

Layout under the cache folder:
  blobs/sha256/<hex>          every OCI blob (manifests, configs, layers); skopeo's shared blob dir
  refs/<domain>/<path>/<tag>  the manifest digest a name points at
  refs/<domain>/<path>/@<digest>  what a by-digest pull stored: apart from the tags (no tag starts with
                              `@`), so it never moves one; it also holds the stored manifest when the
                              digest named an index, or a manifest skopeo converted on the way in
Blobs are verified against their digest before a name is pointed at them, so a name never
leads to a partial or corrupt image.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadImage, ImageNotFound, StoreError
from ..fsutil import canonical_json, process_prefix, room_in_memory_scratch, sha256_file, write_bytes_atomic
from ..spec.refs import ImageRef
from . import manifests, platforms

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
HEAL_ROUNDS = 3  # copies of one image before blobs that stay corrupt are an error
log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # the library never prints: warnings reach the CLI through the listener


@dataclass(frozen=True)
class Layer:
    """One layer of a stored image: its blob (digest, media type, size) and its uncompressed digest."""

    digest: str
    media_type: str
    size: int
    diff_id: str


@dataclass(frozen=True)
class Image:
    """An image in the store: its manifest digest, config and layers, bottom first."""

    ref: str
    manifest_digest: str
    config_digest: str
    config: dict[str, Any]
    layers: tuple[Layer, ...]

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def runtime_config(self) -> dict[str, Any]:
        return dict(self.config.get("config") or {})

    def record(self) -> dict[str, Any]:
        """What the build needs to know of this image, as plain JSON (its content key)."""
        return {
            "ref": self.ref,
            "manifest": self.manifest_digest,
            "config": self.config_digest,
            "layers": [[layer.digest, layer.media_type, layer.diff_id] for layer in self.layers],
        }


class Store:
    """Blobs by digest and names mapped to digests, under one cache folder; seen from one architecture,
    which a name holding several platforms (see `platforms`) resolves to."""

    def __init__(self, root: Path, arch: str = platforms.DEFAULT_ARCH) -> None:
        self.root = Path(root)
        self.arch = arch
        self.blobs = self.root / "blobs"
        self.refs = self.root / "refs"
        self.tmp = self.root / "tmp"

    # blobs -------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexpart = digest.partition(":")
        if algorithm != "sha256" or len(hexpart) != 64:
            raise StoreError(f"unsupported digest {digest!r}: only sha256 digests are stored")
        return self.blobs / algorithm / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_blob(self, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        if not path.exists():
            write_bytes_atomic(path, data, mode=0o444)
        return digest

    def put_blob_file(self, source: Path, digest: str) -> None:
        """Move `source` into the store under `digest`, after checking it has that digest."""
        actual = sha256_file(source)
        if actual != digest:
            raise StoreError(f"blob {source} has digest {actual}, expected {digest}")
        path = self.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        source.chmod(0o444)
        source.replace(path)

    def verify_blob(self, digest: str) -> bool:
        path = self.blob_path(digest)
        return path.is_file() and sha256_file(path) == digest

    def read_json_blob(self, digest: str, what: str = "") -> dict[str, Any]:
        """A manifest or config blob, checked against its digest (a flipped bit is never used)."""
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is missing from the store {self.blobs}") from exc
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise StoreError(
                f"blob {digest} in the store does not match its digest: run `distrokit cache check --repair`"
            )
        return manifests.parse_json(data, what or f"blob {digest}")

    def manifest(self, digest: str, name: str) -> manifests.Manifest:
        return manifests.check_manifest(self.read_json_blob(digest, f"image {name}: manifest {digest}"), name)

    # names -------------------------------------------------------------------------------
    def _ref_path(self, ref: ImageRef) -> Path:
        # NAME:TAG@DIGEST is the digest's, as in Docker: a pull by digest never moves the tag
        leaf = f"@{ref.digest}" if ref.digest else (ref.tag or "latest")
        return self.refs / ref.domain.replace(":", "_") / ref.path / leaf

    def set_ref(self, ref: ImageRef, manifest_digest: str) -> None:
        write_bytes_atomic(self._ref_path(ref), manifest_digest.encode() + b"\n")

    def names(self) -> Iterator[tuple[ImageRef, str]]:
        """Every name in the store with the manifest digest it points at (complete or not)."""
        if not self.refs.is_dir():
            return
        for path in sorted(self.refs.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                domain, *rest = path.relative_to(self.refs).parts
                leaf = rest[-1]
                tag, digest = (None, leaf[1:]) if leaf.startswith("@") else (leaf, None)
                yield ImageRef(domain.replace("_", ":"), "/".join(rest[:-1]), tag, digest), path.read_text().strip()

    def remove_ref(self, ref: ImageRef) -> bool:
        """Drop the name `ref` (its blobs stay until a gc); False when there was no such name."""
        path = self._ref_path(ref)
        if not path.is_file():
            return False
        path.unlink()
        for folder in path.parents:
            if folder == self.refs or any(folder.iterdir()):
                break
            folder.rmdir()
        return True

    def for_arch(self, arch: str) -> Store:
        """The same store seen from `arch`."""
        return self if arch == self.arch else Store(self.root, arch)

    def named_digest(self, ref: ImageRef) -> str | None:
        """What the name `ref` points at (a manifest, or an index of platforms), complete or not."""
        path = self._ref_path(ref)
        return path.read_text().strip() if path.is_file() else None

    def lookup(self, ref: ImageRef) -> str | None:
        """The manifest digest `ref` names in the store (for the store's architecture when the name holds
        several), or None when absent or incomplete. `NAME@DIGEST` is the digest itself when the store holds
        that image, else what a by-digest pull recorded for it (its platform's image, or skopeo's conversion)."""
        if ref.digest:
            digest = platforms.manifest_for(self, ref.digest, self.arch)
            if digest is not None and self._complete(digest, str(ref)):
                return digest
        path = self._ref_path(ref)
        if not path.is_file():
            return None
        digest = platforms.manifest_for(self, path.read_text().strip(), self.arch)
        return digest if digest is not None and self._complete(digest, str(ref)) else None

    def _complete(self, manifest_digest: str, name: str) -> bool:
        if not self.has_blob(manifest_digest):
            return False
        try:
            manifest = self.manifest(manifest_digest, name)
        except StoreError:
            return False  # corrupt in the store: a pull fetches it again
        return all(self.has_blob(d.digest) for d in (manifest.config, *manifest.layers))

    def image(self, ref: ImageRef) -> Image:
        digest = self.lookup(ref)
        if digest is None:
            raise ImageNotFound(f"image {ref.familiar()} is not in the store {self.root}: pull it first")
        return self.image_by_digest(str(ref), digest)

    def image_by_digest(self, name: str, manifest_digest: str) -> Image:
        manifest = self.manifest(manifest_digest, name)
        config = self.read_json_blob(manifest.config.digest, f"image {name}: config {manifest.config.digest}")
        diff_ids = manifests.check_config(config, name, len(manifest.layers))
        for field, descriptor in [
            ("config", manifest.config),
            *((f"layers[{i}]", x) for i, x in enumerate(manifest.layers)),
        ]:
            with contextlib.suppress(FileNotFoundError):
                actual = self.blob_path(descriptor.digest).stat().st_size
                if actual != descriptor.size:
                    raise BadImage(
                        f"image {name}: {field}.size: the manifest says {descriptor.size} bytes, "
                        f"the blob {descriptor.digest} has {actual}"
                    )
        layers = tuple(
            Layer(layer.digest, layer.media_type, layer.size, diff_id)
            for layer, diff_id in zip(manifest.layers, diff_ids, strict=True)
        )
        return Image(name, manifest_digest, manifest.config.digest, config, layers)

    def write_image(self, ref: ImageRef, config: dict[str, Any], layers: list[tuple[str, int, str]]) -> str:
        """Store a config and a manifest over already stored uncompressed layers; name it; return its digest.

        `layers` are (digest, size, media type) bottom first.
        """
        config_bytes = canonical_json(config)
        config_digest = self.put_blob(config_bytes)
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
            "layers": [{"mediaType": media, "digest": digest, "size": size} for digest, size, media in layers],
        }
        manifest_digest = self.put_blob(canonical_json(manifest))
        self.set_ref(ref, manifest_digest)
        return manifest_digest

    @contextlib.contextmanager
    def tempdir(self, prefix: str) -> Iterator[Path]:
        self.tmp.mkdir(parents=True, exist_ok=True)
        with _removed_after(Path(tempfile.mkdtemp(prefix=process_prefix(prefix), dir=self.tmp))) as path:
            yield path

    @contextlib.contextmanager
    def scratch_tree(self, prefix: str, needed: int) -> Iterator[Path]:
        """A scratch folder for a tree of about `needed` bytes that never enters the store as it is: in
        memory when there is room (see fsutil.room_in_memory_scratch), else in tmp/. Nothing in it can be
        renamed into the store (another file system, maybe)."""
        made = self._memory_tempdir(prefix, needed)
        if made is None:
            with self.tempdir(prefix) as path:
                yield path
            return
        try:
            with _removed_after(made) as path:
                yield path
        finally:
            with contextlib.suppress(OSError):  # the store's own folder goes once no tree is left in it
                made.parent.rmdir()

    def _memory_tempdir(self, prefix: str, needed: int) -> Path | None:
        for _ in range(3):  # another thread may remove the store's emptied folder between the two steps
            folder = room_in_memory_scratch(self.root, needed)
            if folder is None:
                return None
            with contextlib.suppress(FileNotFoundError):
                return Path(tempfile.mkdtemp(prefix=process_prefix(prefix), dir=folder))
        return None


@contextlib.contextmanager
def _removed_after(path: Path) -> Iterator[Path]:
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def layout_files(descriptor: dict[str, Any]) -> dict[str, bytes]:
    """The two small files of an OCI image layout naming one manifest: oci-layout and index.json."""
    return {
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
        "index.json": canonical_json({"schemaVersion": 2, "manifests": [descriptor]}),
    }
