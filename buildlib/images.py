"""The content-addressed image store and all image transport (skopeo, driven with `sh`).

Layout under the cache folder:
  blobs/sha256/<hex>          every OCI blob (manifests, configs, layers); skopeo's shared blob dir
  refs/<domain>/<path>/<tag>  the manifest digest a name points at
Blobs are verified against their digest before a name is pointed at them, so a name never
leads to a partial or corrupt image.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sh

from .errors import BadInput, ImageNotFound, StoreError, TransportError
from .fsutil import canonical_json, sha256_file, write_bytes_atomic
from .refs import ImageRef

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TRANSPORTS = ("docker://", "oci:", "oci-archive:", "docker-archive:", "dir:")


@dataclass(frozen=True)
class Layer:
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
    """Blobs by digest and names mapped to digests, under one cache folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
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
        import hashlib

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

    def read_json_blob(self, digest: str) -> dict[str, Any]:
        path = self.blob_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {digest} is missing from the store {self.blobs}") from exc
        value: dict[str, Any] = json.loads(data)
        return value

    # names -------------------------------------------------------------------------------
    def _ref_path(self, ref: ImageRef) -> Path:
        return self.refs / ref.domain.replace(":", "_") / ref.path / (ref.tag or "latest")

    def set_ref(self, ref: ImageRef, manifest_digest: str) -> None:
        write_bytes_atomic(self._ref_path(ref), manifest_digest.encode() + b"\n")

    def names(self) -> Iterator[tuple[ImageRef, str]]:
        """Every name in the store with the manifest digest it points at (complete or not)."""
        if not self.refs.is_dir():
            return
        for path in sorted(self.refs.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                domain, *rest = path.relative_to(self.refs).parts
                ref = ImageRef(domain.replace("_", ":"), "/".join(rest[:-1]), rest[-1])
                yield ref, path.read_text().strip()

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

    def lookup(self, ref: ImageRef) -> str | None:
        """The manifest digest `ref` names in the store, or None when absent or incomplete."""
        if ref.digest:
            return ref.digest if self._complete(ref.digest) else None
        path = self._ref_path(ref)
        if not path.is_file():
            return None
        digest = path.read_text().strip()
        return digest if self._complete(digest) else None

    def _complete(self, manifest_digest: str) -> bool:
        if not self.has_blob(manifest_digest):
            return False
        manifest = self.read_json_blob(manifest_digest)
        if "layers" not in manifest:
            return False
        needed = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
        return all(self.has_blob(digest) for digest in needed)

    def image(self, ref: ImageRef) -> Image:
        digest = self.lookup(ref)
        if digest is None:
            raise ImageNotFound(f"image {ref.familiar()} is not in the store {self.root}: pull it first")
        return self.image_by_digest(str(ref), digest)

    def image_by_digest(self, name: str, manifest_digest: str) -> Image:
        manifest = self.read_json_blob(manifest_digest)
        config_digest = manifest["config"]["digest"]
        config = self.read_json_blob(config_digest)
        diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
        if len(diff_ids) != len(manifest["layers"]):
            raise StoreError(
                f"image {name}: its config lists {len(diff_ids)} layers, its manifest {len(manifest['layers'])}"
            )
        layers = tuple(
            Layer(layer["digest"], layer["mediaType"], int(layer["size"]), diff_id)
            for layer, diff_id in zip(manifest["layers"], diff_ids, strict=True)
        )
        return Image(name, manifest_digest, config_digest, config, layers)

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
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


# transport ---------------------------------------------------------------------------------
def _skopeo() -> sh.Command:
    try:
        return sh.Command("skopeo")
    except sh.CommandNotFound as exc:
        raise BadInput("skopeo is not installed: run `apt-get install skopeo` (the README's setup does)") from exc


def source_for(ref: ImageRef) -> str:
    return f"docker://{ref}"


def pull(store: Store, ref: ImageRef, *, tls_verify: bool | None = None, arch: str = "amd64") -> str:
    """Copy `ref` from its registry into the store; return the manifest digest."""
    if tls_verify is None:
        tls_verify = not _is_loopback(ref.domain)
    return copy_into_store(store, source_for(ref), ref, tls_verify=tls_verify, arch=arch)


def copy_into_store(store: Store, source: str, name: ImageRef, *, tls_verify: bool = True, arch: str = "amd64") -> str:
    """skopeo copy `source` into the shared blob dir, verify every blob, then point `name` at it."""
    skopeo = _skopeo()
    with store.tempdir("pull-") as layout:
        store.blobs.joinpath("sha256").mkdir(parents=True, exist_ok=True)
        # Keep uncompressed layers as they are (skopeo would gzip them for an oci: destination), so an
        # image keeps its manifest digest through `cache export` and `cache import`.
        args = ["--override-arch", arch, "--override-os", "linux", "copy", "--quiet"]
        args.append("--dest-oci-accept-uncompressed-layers")
        if source.startswith("docker://"):
            args.append(f"--src-tls-verify={'true' if tls_verify else 'false'}")
        args += ["--dest-shared-blob-dir", str(store.blobs), source, f"oci:{layout}:image"]
        try:
            skopeo(*args)
        except sh.ErrorReturnCode as exc:
            raise _transport_error(source, exc) from exc
        index = json.loads((layout / "index.json").read_text())
        digest: str = index["manifests"][0]["digest"]
    image = store.image_by_digest(str(name), digest)
    for blob in (digest, image.config_digest, *(layer.digest for layer in image.layers)):
        if not store.verify_blob(blob):
            store.blob_path(blob).unlink(missing_ok=True)
            raise TransportError(f"{source}: blob {blob} did not match its digest; it was removed, run the pull again")
    store.set_ref(name, digest)
    return digest


def _transport_error(source: str, exc: sh.ErrorReturnCode) -> Exception:
    message = exc.stderr.decode(errors="replace").strip().splitlines()
    detail = message[-1] if message else f"skopeo exited {exc.exit_code}"
    lowered = detail.lower()
    if "manifest unknown" in lowered or "not found" in lowered or "no such file" in lowered:
        return ImageNotFound(f"image {source} was not found: {detail}")
    return TransportError(f"could not copy {source}: {detail}")


def _is_loopback(domain: str) -> bool:
    host = domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain
    return host in ("localhost", "127.0.0.1", "[::1]") or host.startswith("127.")


def ensure_image(store: Store, ref: ImageRef, *, force_pull: bool = False) -> Image:
    """The image `ref` names: from the store when present (and not forced), pulled otherwise."""
    if force_pull or store.lookup(ref) is None:
        pull(store, ref)
    return store.image(ref)


def copy_out_of_store(store: Store, manifest_digest: str, destination: str) -> None:
    """skopeo copy one stored image to `destination` (e.g. `oci-archive:FILE:NAME`), reading the shared blob dir."""
    skopeo = _skopeo()
    with store.tempdir("export-") as layout:
        manifest = store.read_json_blob(manifest_digest)
        descriptor = {
            "mediaType": manifest.get("mediaType", MEDIA_MANIFEST),
            "digest": manifest_digest,
            "size": store.blob_path(manifest_digest).stat().st_size,
        }
        write_bytes_atomic(layout / "oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"}))
        write_bytes_atomic(layout / "index.json", canonical_json({"schemaVersion": 2, "manifests": [descriptor]}))
        args = ["copy", "--quiet", "--preserve-digests", "--dest-oci-accept-uncompressed-layers"]
        args += ["--src-shared-blob-dir", str(store.blobs), f"oci:{layout}", destination]
        try:
            skopeo(*args)
        except sh.ErrorReturnCode as exc:
            raise _transport_error(destination, exc) from exc
