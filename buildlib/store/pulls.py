"""Pulls into the store and pushes from it, through skopeo (buildlib.store.transport) with our retry loop.

A pull copies into the store's shared blob folder, checks every new blob against its digest (copying
again, up to HEAL_ROUNDS times, when one arrives corrupt) and only then points the name at the
manifest, adding the platform beside those the name already holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from ..errors import BadImage, BadInput, DistrokitError, ImageNotFound, NoSpace, StoreError, TransportError
from ..fsutil import sha256_file, write_bytes_atomic
from ..lazy import lazy_module
from ..spec.refs import ImageRef
from . import manifests, platforms, transport, trust
from .images import HEAL_ROUNDS, MEDIA_MANIFEST, Image, Store, layout_files, log
from .transport import Endpoint, Event, EventKind, FailureKind, Job, Listener, Network, SkopeoFailed, ignore

if TYPE_CHECKING:  # only a signed push uses it
    from . import signing
else:
    signing = lazy_module("buildlib.store.signing")

# transport ---------------------------------------------------------------------------------
ImageCheck = Callable[["Image"], None]


def pull(
    store: Store,
    ref: ImageRef,
    *,
    network: Network | None = None,
    arch: str = "amd64",
    listener: Listener = ignore,
    check: ImageCheck | None = None,
) -> str:
    """Copy `ref` from its registry (or its mirror) into the store; return the manifest digest."""
    network = network or Network.from_env()
    source = transport.resolve(ref, network)
    return copy_into_store(store, source, ref, network=network, arch=arch, listener=listener, check=check)


def copy_into_store(
    store: Store,
    source: Endpoint | str,
    name: ImageRef,
    *,
    network: Network | None = None,
    arch: str = "amd64",
    listener: Listener = ignore,
    check: ImageCheck | None = None,
) -> str:
    """skopeo copy `source` (an Endpoint, or any skopeo source such as `oci:DIR:TAG`) into the shared blob dir.

    Blobs already in the store are reused, never fetched again; each one reused is verified against its
    digest first, and a corrupt one is removed and fetched again, with a warning. The image is then
    checked (`check`, e.g. its layers indexed within the size limit): only then is `name` pointed at it.
    """
    network = network or Network()
    label = name.familiar()
    store.blobs.joinpath("sha256").mkdir(parents=True, exist_ok=True)
    before = _blob_names(store)
    started = time.monotonic()
    listener(Event(EventKind.START, label))
    original = set(before)
    try:
        digest, attempts = _copy_checked(store, source, label, network, arch, before, listener, check)
    except DistrokitError:
        _drop_new_blobs(store, original)  # a refused image leaves nothing behind, not even unnamed blobs
        raise
    platforms.add_platform(store, name, digest)
    fetched = _landed(store, before, None)
    listener(Event(EventKind.DONE, label, fetched, attempts, seconds=time.monotonic() - started))
    return digest


def _drop_new_blobs(store: Store, before: set[str]) -> None:
    for name in _blob_names(store) - before:
        (store.blobs / "sha256" / name).unlink(missing_ok=True)


def _copy_checked(
    store: Store,
    source: Endpoint | str,
    label: str,
    network: Network,
    arch: str,
    before: set[str],
    listener: Listener,
    check: ImageCheck | None,
) -> tuple[str, int]:
    """Copy until no blob is corrupt, then check the image: its manifest digest and the attempts made."""
    attempts = 0
    for _ in range(HEAL_ROUNDS):
        digest, tries = _copy(store, source, label, network, arch, before, listener)
        attempts += tries
        corrupt = _corrupt_blobs(store, digest, before, label)
        if not corrupt:
            break
        for blob in corrupt:
            store.blob_path(blob).unlink(missing_ok=True)
            before.discard(blob.partition(":")[2])
            _warn(listener, label, f"blob {blob} in the store did not match its digest: removed it, fetching it again")
    else:
        raise StoreError(f"{label}: blobs stayed corrupt after {HEAL_ROUNDS} copies; check the disk of {store.blobs}")
    _check_arch(store, digest, label, arch, listener)
    if check is not None:
        check(store.image_by_digest(label, digest))
    return digest, attempts


def _copy(
    store: Store,
    source: Endpoint | str,
    label: str,
    network: Network,
    arch: str,
    before: set[str],
    listener: Listener,
) -> tuple[str, int]:
    """One copy (with our retries) into a throw-away OCI layout over the shared blob dir: its manifest digest."""
    with store.tempdir("pull-") as layout:
        # the policy checks the source's signatures; the layout cannot hold them, and need not
        args = [*network.trust.pull_flags(), "--override-arch", arch, "--override-os", "linux"]
        args += ["copy", "--quiet", "--remove-signatures"]
        if isinstance(source, Endpoint):
            args += [transport.tls_flag("src", source), *transport.auth_flags("src", network), source.url]
        else:
            args.append(source)
        # take uncompressed layers as they are: otherwise skopeo compresses them and the digest changes
        args += ["--dest-oci-accept-uncompressed-layers", "--dest-shared-blob-dir", str(store.blobs)]
        args.append(f"oci:{layout}:image")
        job = Job(tuple(args), label, lambda: _landed(store, before, layout))
        try:
            attempts = transport.run(job, network.retry, listener).attempts
        except SkopeoFailed as exc:
            if "no space left on device" in exc.failure.detail.lower():
                raise _no_space(store, source, label, network, exc.failure.detail) from exc
            raise _pull_error(exc, source, arch, network, store) from exc
        index = json.loads((layout / "index.json").read_text())
        digest: str = index["manifests"][0]["digest"]
        return digest, attempts


def _pull_error(exc: SkopeoFailed, source: Endpoint | str, arch: str, network: Network, store: Store) -> Exception:
    if exc.failure.kind is FailureKind.POLICY:
        kind, _, location = ("docker", "", source.location) if isinstance(source, Endpoint) else source.partition(":")
        return trust.refused(network.trust.policy, label_of(source), kind, location, exc.failure.detail)
    if not isinstance(source, Endpoint):
        return TransportError(f"could not copy {source}: {exc.failure.detail}")
    if exc.failure.kind is FailureKind.PLATFORM:
        platforms = list_platforms(source, network)
        return BadInput(
            f"image {source.name} has no linux/{arch} image; it has {', '.join(platforms) or 'none'}: "
            "choose one of them with --arch"
        )
    reached = any(ref.domain == source.registry for ref, _ in store.names())
    return transport.explain(exc.failure, source, exc.attempts, reached_before=reached)


def _no_space(store: Store, source: Endpoint | str, label: str, network: Network, detail: str) -> NoSpace:
    """A pull the store's disk had no room for: how much the image needs, and how much is free."""
    free = shutil.disk_usage(store.blobs).free
    needed = _bytes_missing(store, source, network)
    wanted = f"it needs {_mib(needed)} more and " if needed is not None else ""
    return NoSpace(
        f"{label}: no space left in the store {store.root} ({detail}): {wanted}{_mib(free)} is free; "
        "nothing of the image was named: free some space (e.g. `distrokit cache gc`) and pull again"
    )


def _bytes_missing(store: Store, source: Endpoint | str, network: Network) -> int | None:
    """The bytes of the image's blobs the store does not hold yet, from its manifest (best effort)."""
    if isinstance(source, Endpoint):
        args = ("inspect", "--raw", transport.tls_flag("", source), *transport.auth_flags("", network), source.url)
    else:
        args = ("inspect", "--raw", source)
    try:
        raw = transport.run(Job(args, label_of(source)), network.retry).output
        manifest = manifests.check_manifest(manifests.parse_json(raw.encode(), "manifest"), label_of(source))
    except (SkopeoFailed, BadInput):
        return None
    return sum(d.size for d in (manifest.config, *manifest.layers) if not store.has_blob(d.digest))


def label_of(source: Endpoint | str) -> str:
    return source.name if isinstance(source, Endpoint) else source


def _mib(count: int) -> str:
    return f"{count / (1 << 20):.1f} MiB"


def list_platforms(endpoint: Endpoint, network: Network) -> list[str]:
    """The platforms (os/arch[/variant]) a multi-platform index offers, from `skopeo inspect --raw`."""
    index = json.loads(_inspect_raw(endpoint, network))
    return sorted({_platform_name(entry) for entry in index.get("manifests") or ()})


def _platform_name(entry: dict[str, Any], variant: bool = True) -> str:
    """`os/arch[/variant]` of an index entry."""
    platform = entry.get("platform") or {}
    parts = [platform.get("os", "?"), platform.get("architecture", "?"), platform.get("variant") if variant else None]
    return "/".join(p for p in parts if p)


def _blob_names(store: Store) -> set[str]:
    try:
        return {entry.name for entry in os.scandir(store.blobs / "sha256")}
    except FileNotFoundError:
        return set()


def _landed(store: Store, before: set[str], layout: Path | None) -> int:
    """Bytes this copy has written: new blobs in the store, plus partial ones in the layout."""
    total = 0
    with os.scandir(store.blobs / "sha256") as entries:
        for entry in entries:
            if entry.name not in before:
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat().st_size
    if layout is not None:
        for path in layout.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file():
                    total += path.stat().st_size
    return total


def _corrupt_blobs(store: Store, manifest_digest: str, before: set[str], label: str) -> list[str]:
    """Blobs of the image that do not match their digest.

    skopeo checks every blob it fetches against its digest as it streams, so a blob this copy wrote is
    only checked for its size; a blob that was already in the store (and that skopeo reused unread) is
    hashed in full.
    """
    if not store.verify_blob(manifest_digest):  # small: always hashed
        return [manifest_digest]
    manifest = store.manifest(manifest_digest, label)
    corrupt = []
    for descriptor in (manifest.config, *manifest.layers):
        path = store.blob_path(descriptor.digest)
        try:
            ok = path.stat().st_size == descriptor.size
        except FileNotFoundError:
            ok = False
        if ok and path.name in before:
            ok = sha256_file(path) == descriptor.digest
        elif not ok and path.is_file() and path.name not in before and sha256_file(path) == descriptor.digest:
            raise BadImage(
                f"image {label}: the manifest says blob {descriptor.digest} has {descriptor.size} bytes, "
                f"it has {path.stat().st_size}: the image's source is lying or broken"
            )
        if not ok:
            corrupt.append(descriptor.digest)
    return corrupt


def _check_arch(store: Store, digest: str, label: str, arch: str, listener: Listener) -> None:
    image = store.image_by_digest(label, digest)
    found = image.config.get("architecture")
    if found and found != arch:
        _warn(listener, label, f"this image is for {found}, not {arch}: it is no multi-platform index, so it was kept")


def _warn(listener: Listener, label: str, message: str) -> None:
    log.warning("%s: %s", label, message)
    listener(Event(EventKind.WARNING, label, message=message))


class PushOptions(TypedDict, total=False):
    """How a push goes: `network` (default: from the environment), `listener`, `signer`, and
    `signer_checked` (the caller checked the key and the signature store already, once for many pushes)."""

    network: Network | None
    listener: Listener
    signer: signing.Signer | None
    signer_checked: bool


def push(store: Store, ref: ImageRef, dest: str, **options: Unpack[PushOptions]) -> str:
    """Push the stored image `ref` to `dest` (REGISTRY/PATH[:TAG]) with its digest unchanged; return it."""
    digest = store.lookup(ref)
    if digest is None:
        raise ImageNotFound(f"image {ref.familiar()} is not in the store {store.root}: pull or build it first")
    return push_digest(store, digest, dest, **options)


def push_digest(
    store: Store,
    digest: str,
    dest: str,
    *,
    network: Network | None = None,
    listener: Listener = ignore,
    signer: signing.Signer | None = None,
    signer_checked: bool = False,
) -> str:
    """Push a stored manifest, or an index with every platform image it lists, to `dest`; digests unchanged.
    With `signer`, skopeo signs it and stores the signature where registries.d says (`signer_checked`: the
    caller checked the key and the signature store already, once for many pushes)."""
    network = network or Network.from_env()
    manifests = platforms.index_manifests(store, digest)
    endpoint = transport.destination(dest, network)
    label = endpoint.name
    if signer is not None and not signer_checked:
        signing.check_signer(store, signer, endpoint, network)
    listener(Event(EventKind.START, label))
    started = time.monotonic()
    with store.tempdir("push-") as layout:
        _write_layout(store, layout, digest)
        args = [*network.trust.registries_flags(), "copy", "--quiet", "--preserve-digests"]
        args += [*(signer.flags() if signer else ()), "--src-shared-blob-dir", str(store.blobs)]
        args += ["--multi-arch", "all"] if manifests != [digest] else []
        args.append(f"oci:{layout}:image")
        args += [transport.tls_flag("dest", endpoint), *transport.auth_flags("dest", network), endpoint.url]
        try:
            attempts = transport.run(Job(tuple(args), label), network.retry, listener).attempts
        except SkopeoFailed as exc:
            raise transport.explain(exc.failure, endpoint, exc.attempts) from exc
    size = sum(layer.size for manifest in manifests for layer in store.image_by_digest(label, manifest).layers)
    listener(Event(EventKind.DONE, label, size, attempts, seconds=time.monotonic() - started))
    return digest


def _write_layout(store: Store, layout: Path, digest: str) -> None:
    """An OCI layout naming one manifest of the store; its blobs stay in the store (skopeo's shared blob dir)."""
    descriptor = {
        "mediaType": platforms.MEDIA_INDEX if platforms.index_manifests(store, digest) != [digest] else MEDIA_MANIFEST,
        "digest": digest,
        "size": store.blob_path(digest).stat().st_size,
        "annotations": {"org.opencontainers.image.ref.name": "image"},
    }
    for name, data in layout_files(descriptor).items():
        write_bytes_atomic(layout / name, data)


def ensure_image(
    store: Store,
    ref: ImageRef,
    *,
    force_pull: bool = False,
    network: Network | None = None,
    arch: str = "amd64",
    listener: Listener = ignore,
) -> Image:
    """The image `ref` names: from the store when present for `arch` (and not forced), pulled otherwise."""
    store = store.for_arch(arch)
    digest = None if force_pull else store.lookup(ref)
    if digest is not None and store.image_by_digest(str(ref), digest).config.get("architecture", arch) != arch:
        digest = None  # the store holds this name for another platform
    if digest is None:
        pull(store, ref, network=network, arch=arch, listener=listener)
    return store.image(ref)


def copy_out_of_store(store: Store, manifest_digest: str, destination: str) -> None:
    """skopeo copy one stored image to a local `destination` such as `oci-archive:FILE:NAME`, digest unchanged
    (a `docker-archive:` destination takes Docker's manifest format, so there the digest changes)."""
    with store.tempdir("export-") as layout:
        _write_layout(store, layout, manifest_digest)
        keep = [] if destination.startswith("docker-archive:") else ["--preserve-digests"]
        args = ["copy", "--quiet", *keep, "--dest-oci-accept-uncompressed-layers"]
        args += ["--src-shared-blob-dir", str(store.blobs), f"oci:{layout}:image", destination]
        try:
            transport.run(Job(tuple(args), destination), Network().retry)
        except SkopeoFailed as exc:
            raise TransportError(f"could not write {destination}: {exc.failure.detail}") from exc


# pinned digests (for the lock) ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class RemotePins:
    """What a tag names in its registry now: the digest of what it points at (an index or a manifest) and
    the manifest digest of each asked platform (`os/arch[/variant]`)."""

    digest: str
    platforms: dict[str, str]


def inspect_pins(ref: ImageRef, platforms: Sequence[str], *, network: Network | None = None) -> RemotePins:
    """Ask the registry (skopeo inspect --raw) which digests `ref` names now, for each of `platforms`."""
    network = network or Network.from_env()
    endpoint = transport.resolve(ref, network)
    raw = _inspect_raw(endpoint, network)
    digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    top = json.loads(raw)
    if "manifests" not in top:  # one manifest, no index: every platform asked gets it, as a pull does
        return RemotePins(digest, dict.fromkeys(platforms, digest))
    offered: dict[str, str] = {}
    for entry in top["manifests"]:  # the first entry of a platform wins, as skopeo's choice does
        offered.setdefault(_platform_name(entry), entry["digest"])
        offered.setdefault(_platform_name(entry, variant=False), entry["digest"])
    missing = [p for p in platforms if p not in offered]
    if missing:
        raise BadInput(
            f"image {ref.familiar()} has no {', '.join(missing)} image; it has "
            f"{', '.join(sorted(offered)) or 'none'}: choose among them with --arch"
        )
    return RemotePins(digest, {p: offered[p] for p in platforms})


def _inspect_raw(endpoint: Endpoint, network: Network) -> bytes:
    args = ("inspect", "--raw", transport.tls_flag("", endpoint), *transport.auth_flags("", network), endpoint.url)
    try:
        output = transport.run(Job(args, endpoint.name), network.retry).output
    except SkopeoFailed as exc:
        raise transport.explain(exc.failure, endpoint, exc.attempts) from exc
    return output.encode()  # skopeo writes the manifest's bytes as they are: UTF-8 JSON, no newline added


def pinned_in_store(store: Store, manifest_digest: str) -> str:
    """The stored manifest a pinned digest became (skopeo may convert a Docker v2 manifest to OCI)."""
    alias = store.root / "pinned" / manifest_digest.replace(":", "-")
    return alias.read_text().strip() if alias.is_file() else manifest_digest


def ensure_pinned(
    store: Store,
    ref: ImageRef,
    manifest_digest: str,
    *,
    network: Network | None = None,
    arch: str = "amd64",
    listener: Listener = ignore,
) -> Image:
    """The image a lock pins for `ref`: the store's copy of `manifest_digest`, pulled by digest when missing.

    The name `ref` is pointed at it, so the tag in the store follows the lock. skopeo turns a Docker v2
    manifest into an OCI one on the way in (another digest for the same content, fetched by the pinned
    digest and checked against it): the store remembers which stored manifest a pinned digest became."""
    alias = store.root / "pinned" / manifest_digest.replace(":", "-")
    stored = pinned_in_store(store, manifest_digest)
    if store.lookup(ImageRef(ref.domain, ref.path, None, stored)) is None:
        network = network or Network.from_env()
        source = transport.resolve(ImageRef(ref.domain, ref.path, None, manifest_digest), network)
        stored = copy_into_store(store, source, ref, network=network, arch=arch, listener=listener)
        if stored != manifest_digest:
            write_bytes_atomic(alias, stored.encode() + b"\n")
    platforms.add_platform(store, ref, stored)
    return store.image_by_digest(str(ref), stored)
