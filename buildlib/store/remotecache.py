"""Task results to and from an OCI registry: the room beside `transport` that moves a shared build cache.

A result is an OCI artifact in one repository of any OCI registry, tagged `KIND-KEY` by the task key
`tasks` computed. Its config (media type CONFIG_MEDIA) names the kind and the key; each file is one
layer (FILE_MEDIA) titled by its name. Nothing in an artifact depends on the machine or the time, so
two machines pushing one key push the same bytes to the same tag: the second push is a no-op. A
component image travels as the image it is (`push_image` / `fetch_image`). skopeo moves the bytes
through `transport.run`, with its retry loop and the auth files pulls use. With a `signing.Signer` every
artifact and image is signed as `push --sign-by` signs (the signature where registries.d says), so a
containers policy asking `signedBy` for the cache repository accepts them when they are fetched.

Fetched artifacts are checked before anything reaches the store: the manifest against its digest,
the config's kind and key against the ones asked for, every file against its layer's digest and
size. This room decides nothing: `tasks.shared` chooses what to fetch and push and what a failure
means for the build.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, ImageNotFound, StoreError, TransportError
from ..fsutil import canonical_json, sha256_file, write_bytes_atomic
from ..spec.refs import ImageRef
from . import images, pulls, signing, transport, trust
from .images import Store
from .transport import Endpoint, FailureKind, Job, Network, SkopeoFailed

ARTIFACT_TYPE = "application/vnd.distrokit.task.v1"
CONFIG_MEDIA = "application/vnd.distrokit.task.config.v1+json"
FILE_MEDIA = "application/vnd.distrokit.task.file.v1"
TITLE = "org.opencontainers.image.title"
FROM_ENV, TO_ENV = "DISTROKIT_CACHE_FROM", "DISTROKIT_CACHE_TO"
PROBE_SECONDS = 3.0


class CacheMiss(Exception):
    """The registry has no artifact under this tag (internal: a miss is no error)."""


class CacheUnusable(Exception):
    """The registry cannot be used for this build (unreachable, refused credentials, TLS): say so once."""


class ArtifactRejected(Exception):
    """This one artifact failed its checks (a corrupt blob, a wrong key): build the result locally."""


@dataclass(frozen=True)
class Repository:
    """`REGISTRY/PATH` of a cache repository; results are its tags."""

    name: str

    @classmethod
    def parse(cls, text: str) -> Repository:
        bare = text.removeprefix("docker://").rstrip("/")
        ref = ImageRef.parse(bare)
        if ref.digest or bare.rsplit("/", 1)[-1].count(":") or "/" not in bare:
            raise BadInput(
                f"cache {text!r}: name a repository REGISTRY/PATH without a tag, e.g. 127.0.0.1:5000/distrokit-cache"
            )
        return cls(f"{ref.domain}/{ref.path}")

    @property
    def registry(self) -> str:
        return self.name.split("/", 1)[0]

    def endpoint(self, tag: str, network: Network) -> Endpoint:
        return Endpoint(f"{self.name}:{tag}", f"{self.name}:{tag}", self.registry, self.tls_verify(network))

    def tls_verify(self, network: Network) -> bool:
        return not network.allows_plain_http(self.registry)


def repositories(flags: Sequence[str], env_name: str, env: Mapping[str, str] | None = None) -> tuple[Repository, ...]:
    """Repositories from the environment variable (spaces or commas) then the flags, each once."""
    env = os.environ if env is None else env
    texts = [*env.get(env_name, "").replace(",", " ").split(), *flags]
    return tuple(dict.fromkeys(Repository.parse(text) for text in texts))


def tag(kind: str, key: str) -> str:
    return f"{kind}-{key}"


def probe(repository: Repository, seconds: float = PROBE_SECONDS) -> None:
    """Raise CacheUnusable when nothing answers at the registry's address (a dead cache costs seconds, not retries)."""
    host, _, port = repository.registry.rpartition(":")
    if not host or not port.isdigit():
        host, port = repository.registry, "443"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:
        raise CacheUnusable(f"{repository.registry} is unreachable ({exc.strerror or exc})") from exc


# files ----------------------------------------------------------------------------------------
def check_signer(store: Store, repository: Repository, signer: signing.Signer, network: Network) -> None:
    """Before a build pushes signed results: the signatures have a place to go, and the key signs."""
    signing.check_signer(store, signer, repository.endpoint("probe", network), network)


def push_files(
    store: Store,
    repository: Repository,
    kind: str,
    key: str,
    files: Mapping[str, Path],
    network: Network,
    signer: signing.Signer | None = None,
) -> None:
    """Push `files` ({name: path}) as the artifact `kind`-`key`; signed with `signer` (checked before)."""
    with store.tempdir("cache-push-") as layout:
        blobs = layout / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        layers = []
        for name in sorted(files):
            digest = sha256_file(files[name])
            _link(files[name], blobs / digest.partition(":")[2])
            layers.append({"mediaType": FILE_MEDIA, "digest": digest, "size": files[name].stat().st_size})
            layers[-1]["annotations"] = {TITLE: name}  # type: ignore[assignment]
        config = canonical_json({"kind": kind, "key": key, "files": sorted(files)})
        manifest = {
            "schemaVersion": 2,
            "mediaType": images.MEDIA_MANIFEST,
            "artifactType": ARTIFACT_TYPE,
            "config": {"mediaType": CONFIG_MEDIA, "digest": _put(blobs, config), "size": len(config)},
            "layers": layers,
        }
        _write_index(layout, _put(blobs, canonical_json(manifest)), len(canonical_json(manifest)))
        endpoint = repository.endpoint(tag(kind, key), network)
        args = [*network.trust.registries_flags(), "copy", "--quiet", "--preserve-digests"]
        args += [*(signer.flags() if signer else ()), f"oci:{layout}:artifact"]
        args += [transport.tls_flag("dest", endpoint), *transport.auth_flags("dest", network), endpoint.url]
        _run(Job(tuple(args), endpoint.name), endpoint, network)


def fetch_files(
    store: Store, repository: Repository, kind: str, key: str, network: Network, into: Path
) -> dict[str, Path]:
    """Fetch the artifact `kind`-`key` into the folder `into` (in the store, so a rename moves it in):
    {name: checked file}. Raises CacheMiss, CacheUnusable or ArtifactRejected."""
    endpoint = repository.endpoint(tag(kind, key), network)
    layout = into / "layout"
    args = [*network.trust.pull_flags(), "copy", "--quiet", "--remove-signatures"]  # the policy applies here too
    args += [transport.tls_flag("src", endpoint), *transport.auth_flags("src", network)]
    args += [endpoint.url, f"oci:{layout}:artifact"]
    _run(Job(tuple(args), endpoint.name), endpoint, network)
    manifest = _checked_manifest(layout, endpoint.name)
    config = json.loads(_checked_blob(layout, manifest["config"], endpoint.name).read_bytes())
    if config.get("kind") != kind or config.get("key") != key:
        raise ArtifactRejected(f"{endpoint.name} holds {config.get('kind')}-{config.get('key')}, not {kind}-{key}")
    found = {}
    for layer in manifest.get("layers") or ():
        name = (layer.get("annotations") or {}).get(TITLE, "")
        if not name or "/" in name or name.startswith("."):
            raise ArtifactRejected(f"{endpoint.name}: a file without a plain name ({name!r})")
        found[name] = _checked_blob(layout, layer, endpoint.name)
    if sorted(found) != sorted(config.get("files") or ()):
        raise ArtifactRejected(f"{endpoint.name}: its files {sorted(found)} differ from its config's")
    return found


# component images -----------------------------------------------------------------------------
def push_image(
    store: Store,
    ref: ImageRef,
    repository: Repository,
    kind: str,
    key: str,
    network: Network,
    signer: signing.Signer | None = None,
) -> None:
    """Push the stored image `ref` as `kind`-`key`; signed with `signer` (checked before: see check_signer)."""
    dest = f"{repository.name}:{tag(kind, key)}"
    try:
        pulls.push(store, ref, dest, network=network, signer=signer, signer_checked=True)
    except TransportError as exc:
        raise CacheUnusable(str(exc)) from exc


def fetch_image(
    store: Store, repository: Repository, kind: str, key: str, name: ImageRef, network: Network, arch: str
) -> str:
    """Copy the image `kind`-`key` into the store under `name` (every blob checked); its manifest digest."""
    endpoint = repository.endpoint(tag(kind, key), network)
    try:
        return pulls.copy_into_store(store, endpoint, name, network=network, arch=arch)
    except ImageNotFound as exc:
        raise CacheMiss(str(exc)) from exc
    except (StoreError, trust.ImageRefused) as exc:  # a refused cache entry is built here instead
        raise ArtifactRejected(str(exc)) from exc
    except TransportError as exc:
        raise (ArtifactRejected if "digest" in str(exc).lower() else CacheUnusable)(str(exc)) from exc


# helpers -------------------------------------------------------------------------------------
def _run(job: Job, endpoint: Endpoint, network: Network) -> None:
    try:
        transport.run(job, network.retry)
    except SkopeoFailed as exc:
        raise _unusable(exc, endpoint) from exc


def _unusable(exc: SkopeoFailed, endpoint: Endpoint) -> Exception:
    failure = exc.failure
    if failure.kind is FailureKind.POLICY:
        return ArtifactRejected(f"{endpoint.name}: refused by the containers policy ({failure.detail})")
    if failure.kind is FailureKind.NOT_FOUND and "no such host" not in failure.detail:
        return CacheMiss(failure.detail)
    if "digest" in failure.detail.lower():
        return ArtifactRejected(f"{endpoint.name}: {failure.detail}")
    return CacheUnusable(str(transport.explain(failure, endpoint, exc.attempts)))


def _checked_manifest(layout: Path, name: str) -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_bytes())
    descriptor = index["manifests"][0]
    manifest: dict[str, Any] = json.loads(_checked_blob(layout, descriptor, name).read_bytes())
    if manifest.get("artifactType") != ARTIFACT_TYPE or manifest["config"].get("mediaType") != CONFIG_MEDIA:
        raise ArtifactRejected(f"{name} is no distrokit cache artifact")
    return manifest


def _checked_blob(layout: Path, descriptor: Mapping[str, Any], name: str) -> Path:
    digest = str(descriptor.get("digest", ""))
    algorithm, _, hexpart = digest.partition(":")
    path = layout / "blobs" / algorithm / hexpart
    if algorithm != "sha256" or len(hexpart) != 64 or not path.is_file():
        raise ArtifactRejected(f"{name}: blob {digest!r} is missing or not sha256")
    if path.stat().st_size != int(descriptor.get("size", -1)) or sha256_file(path) != digest:
        raise ArtifactRejected(f"{name}: blob {digest} does not match its digest")
    return path


def _put(blobs: Path, data: bytes) -> str:
    from hashlib import sha256

    digest = "sha256:" + sha256(data).hexdigest()
    write_bytes_atomic(blobs / digest.partition(":")[2], data)
    return digest


def _write_index(layout: Path, digest: str, size: int) -> None:
    descriptor = {
        "mediaType": images.MEDIA_MANIFEST,
        "digest": digest,
        "size": size,
        "annotations": {"org.opencontainers.image.ref.name": "artifact"},
    }
    for name, data in images.layout_files(descriptor).items():
        write_bytes_atomic(layout / name, data)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
