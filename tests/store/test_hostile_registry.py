"""Hostile registries (through tests/faultproxy.py in front of a real docker-registry): garbage answers,
bytes that are no HTTP, redirect loops, sizes that lie, and a server that stalls forever. Each pull
ends within bounded time in one line naming the image, exit 1 or 2, no traceback, and no name in the store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy, Plan, Script
from registry import Registry, random_layer, stored_image

from buildlib import cli
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls
from buildlib.store.images import Store
from buildlib.store.transport import Network, RetryPolicy

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, registry: Registry) -> str:
    source = Store(tmp_path_factory.mktemp("hostile-source"))
    ref = ImageRef.parse(f"{registry.host}/hostile/app:v1")
    stored_image(source, ref, [random_layer(source, 100_000, "a"), random_layer(source, 100_000, "b")])
    pulls.push(source, ref, str(ref), network=Network(retry=RetryPolicy(attempts=3, timeout=20)))
    return "hostile/app:v1"


def pull(proxy: FaultProxy, cache: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, float]:
    argv = ["--cache", str(cache), "pull", "-q", f"{proxy.host}/hostile/app:v1", "--retries", "2", "--timeout", "8"]
    started = time.monotonic()
    code = cli.main([*argv, *extra])
    return code, capsys.readouterr().err, time.monotonic() - started


@pytest.mark.parametrize(
    "pattern, fault",
    [
        ("/manifests/", Fault("garbage")),
        ("/blobs/", Fault("garbage")),
        ("/manifests/", Fault("noise")),
        ("/blobs/", Fault("noise")),
        ("/manifests/", Fault("redirect")),
        ("/blobs/", Fault("redirect")),
        ("/manifests/", Fault("lie")),
        ("/blobs/", Fault("lie")),
        ("/blobs/", Fault("stall", at=0.3, seconds=60)),
    ],
    ids=lambda value: value if isinstance(value, str) else value.kind,
)
def test_a_hostile_registry_fails_one_clear_line_and_names_nothing(
    image: str, registry: Registry, tmp_path: Path, capsys, pattern: str, fault: Fault
) -> None:
    proxy = FaultProxy(registry.port, Plan([Script(pattern, [fault], repeat=True)]))
    try:
        code, err, seconds = pull(proxy, tmp_path / "cache", capsys, "--stall", "2")
    finally:
        proxy.stop()
    assert code in (1, 2), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "hostile/app:v1" in lines[0]
    assert seconds < 60
    store = Store(tmp_path / "cache")
    assert store.lookup(ImageRef.parse(f"{proxy.host}/{image}")) is None
    assert not list((tmp_path / "cache").glob("refs/**/v1"))


def test_the_same_registry_honest_again_pulls_fine(image: str, registry: Registry, tmp_path: Path, capsys) -> None:
    """After any of the faults above, an honest answer fills the store: nothing poisoned it."""
    proxy = FaultProxy(registry.port, Plan([Script("/blobs/", [Fault("garbage"), Fault("lie")])]))
    try:
        pull(proxy, tmp_path / "cache", capsys, "--retries", "1")
        code, err, _ = pull(proxy, tmp_path / "cache", capsys)
    finally:
        proxy.stop()
    assert code == 0, err
    ref = ImageRef.parse(f"{proxy.host}/{image}")
    store = Store(tmp_path / "cache")
    assert all(store.verify_blob(layer.digest) for layer in store.image(ref).layers)
