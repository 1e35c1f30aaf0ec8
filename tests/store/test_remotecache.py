"""buildlib.store.remotecache: artifacts tagged by task key in a real loopback registry."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from registry import Registry

from buildlib.errors import BadInput
from buildlib.store.images import Store
from buildlib.store.remotecache import CacheMiss, Repository, fetch_files, push_files, repositories
from buildlib.store.transport import Network, RetryPolicy

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
