"""buildlib.store.remotecache: artifacts tagged by task key in a real loopback registry."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from registry import Registry, random_layer, stored_image
from signkit import GpgKey, gnupg_home, make_key, signed_by, write_policy, write_registries_d

from buildlib.errors import BadInput
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store
from buildlib.store.remotecache import (
    ArtifactRejected,
    CacheMiss,
    Repository,
    check_signer,
    fetch_files,
    fetch_image,
    push_files,
    push_image,
    repositories,
)
from buildlib.store.signing import Signer
from buildlib.store.transport import Network, RetryPolicy
from buildlib.store.trust import Trust

NETWORK = Network(retry=RetryPolicy(attempts=2, backoff=0.1))


def test_repository_names_a_repository_without_tag() -> None:
    assert Repository.parse("docker://127.0.0.1:5000/team/cache/").name == "127.0.0.1:5000/team/cache"
    assert Repository.parse("ghcr.io/acme/cache").registry == "ghcr.io"
    for bad in ("127.0.0.1:5000/cache:tag", "cache"):
        with pytest.raises(BadInput, match="without a tag"):
            Repository.parse(bad)
    env = {"DISTROKIT_CACHE_FROM": "a.io/x, b.io/y"}
    assert [r.name for r in repositories(["a.io/x", "c.io/z"], "DISTROKIT_CACHE_FROM", env)] == [
        "a.io/x",
        "b.io/y",
        "c.io/z",
    ]


def test_concurrent_pushes_of_one_key_are_harmless_and_fetch_checks(registry: Registry, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    repo = Repository(f"{registry.host}/artifacts-{tmp_path.name}")
    payload = tmp_path / "payload"
    payload.write_bytes(b"segment bytes " * 1000)
    errors: list[BaseException] = []

    def push() -> None:
        try:
            push_files(store, repo, "segment", "k1", {"segment": payload}, NETWORK)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=push) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.tempdir("t-") as into:
        files = fetch_files(store, repo, "segment", "k1", NETWORK, into)
        assert files["segment"].read_bytes() == payload.read_bytes()
    with store.tempdir("t-") as into, pytest.raises(CacheMiss):
        fetch_files(store, repo, "segment", "other", NETWORK, into)


def test_signed_entries_pass_a_signed_by_policy_and_unsigned_ones_do_not(registry: Registry, tmp_path: Path) -> None:
    """Artifacts and images pushed with a signer carry a GPG signature the containers policy checks on fetch:
    accepted when it names that key, rejected when it names another or the entry is unsigned."""
    key, other = make_key(tmp_path / "gnupg", "cache"), make_key(tmp_path / "gnupg", "other")
    registries_d = write_registries_d(tmp_path / "registries.d", registry.host, tmp_path / "signatures")
    repo = Repository(f"{registry.host}/signed-{tmp_path.name}")
    store = Store(tmp_path / "store")
    image = ImageRef.parse("localhost/cached/app:1")
    stored_image(store, image, [random_layer(store, 10_000)])
    payload = tmp_path / "payload"
    payload.write_bytes(b"segment bytes " * 100)
    signer = Signer(gpg_key=key.fingerprint)
    pushing = Network(retry=NETWORK.retry, trust=Trust(registries_d=registries_d))
    with gnupg_home(tmp_path / "gnupg"):
        check_signer(store, repo, signer, pushing)
        push_files(store, repo, "segment", "signed", {"segment": payload}, pushing, signer)
        push_image(store, image, repo, "component", "signed", pushing, signer)
        push_files(store, repo, "segment", "plain", {"segment": payload}, pushing)  # no signer: as before
    assert len(list((tmp_path / "signatures").rglob("signature-*"))) == 2

    def fetching(trusted: GpgKey) -> Network:
        policy = write_policy(tmp_path / f"{trusted.fingerprint}.json", {repo.name: [signed_by(trusted)]})
        return Network(retry=NETWORK.retry, trust=Trust(policy, registries_d))

    fresh = Store(tmp_path / "fresh")
    with fresh.tempdir("t-") as into:
        assert fetch_files(fresh, repo, "segment", "signed", fetching(key), into)["segment"].read_bytes() == (
            payload.read_bytes()
        )
    assert fetch_image(fresh, repo, "component", "signed", image, fetching(key), "amd64") == store.lookup(image)
    for kind, tag_key, trusted in (("segment", "signed", other), ("segment", "plain", key)):
        with fresh.tempdir("t-") as into, pytest.raises(ArtifactRejected, match="refused by the containers policy"):
            fetch_files(fresh, repo, kind, tag_key, fetching(trusted), into)
    with pytest.raises(ArtifactRejected):
        fetch_image(Store(tmp_path / "other"), repo, "component", "signed", image, fetching(other), "amd64")
