"""Pulls and pushes against a real docker-registry on loopback, with and without a fault-injecting proxy."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import time
import warnings
from pathlib import Path

import pytest
from faultproxy import Fault, FaultProxy, Plan, Script
from registry import Registry, push_index, random_layer, running_registry, stored_image
from rich.console import Console

from buildlib import cli
from buildlib.cli import transfer as cli_transfer
from buildlib.errors import BadInput, ImageNotFound, TransportError
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls, transport
from buildlib.store.images import Store
from buildlib.store.transport import Event, EventKind, Network, RetryPolicy, parse_mirror
from buildlib.upkeep import cache as upkeep_cache

pytestmark = pytest.mark.registry

FAST = RetryPolicy(attempts=10, timeout=4, backoff=0.05, max_backoff=0.2)
NET = Network(retry=FAST)
BLOBS = r"/blobs/sha256:"


def blob_names(store: Store) -> set[str]:
    folder = store.blobs / "sha256"
    return {f"sha256:{p.name}" for p in folder.iterdir()} if folder.is_dir() else set()


def configs(store: Store) -> set[str]:
    """Config blobs: skopeo fetches an image's config again on every copy (it is small); layers it reuses."""
    found = set()
    for path in (store.blobs / "sha256").iterdir():
        data = path.read_bytes()
        if len(data) < 100_000 and b'"rootfs"' in data:
            found.add(f"sha256:{path.name}")
    return found


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """Where test images are made before they are pushed."""
    return Store(tmp_path_factory.mktemp("source"))


@pytest.fixture(scope="module")
def pushed(source: Store, registry: Registry) -> dict[str, object]:
    """`test/app:v1`: four layers of 200 kB, the first shared with `test/other:v1`; both pushed."""
    layers = [random_layer(source, 200_000, f"f{i}") for i in range(4)]
    app = ImageRef.parse(f"{registry.host}/test/app:v1")
    digest = stored_image(source, app, layers)
    pulls.push(source, app, str(app), network=NET)
    other = ImageRef.parse(f"{registry.host}/test/other:v1")
    stored_image(source, other, [layers[0], random_layer(source, 50_000, "g")])
    pulls.push(source, other, str(other), network=NET)
    return {"ref": app, "digest": digest, "layers": layers, "other": other}


def test_pull_by_tag_then_digest_and_docker_manifest(pushed: dict[str, object], registry: Registry, tmp_path: Path):
    store = Store(tmp_path / "cache")
    ref = pushed["ref"]
    assert isinstance(ref, ImageRef)
    digest = pulls.pull(store, ref, network=NET)
    assert digest == pushed["digest"]
    assert [layer.digest for layer in store.image(ref).layers] == [la.digest for la in pushed["layers"]]  # type: ignore[attr-defined]
    by_digest = ImageRef.parse(f"{ref.name}@{digest}")
    assert pulls.pull(store, by_digest, network=NET) == digest
    docker_ref = f"{registry.host}/test/app:docker"
    subprocess.run(
        ["skopeo", "copy", "-q", "-f", "v2s2", "--src-tls-verify=false", "--dest-tls-verify=false"]
        + [f"docker://{ref}", f"docker://{docker_ref}"],
        check=True,
    )
    converted = pulls.pull(store, ImageRef.parse(docker_ref), network=NET)
    image = store.image(ImageRef.parse(docker_ref))
    assert converted != digest and len(image.layers) == 4


def test_a_pull_by_digest_moves_no_tag(pushed: dict[str, object], source: Store, registry: Registry, tmp_path: Path):
    """`NAME@DIGEST` records the digest only: `NAME:latest` pulled before keeps its image, and the digest
    (of a manifest, of an index, or of a Docker manifest skopeo converts) resolves without pulling again."""
    app, other = pushed["ref"], pushed["other"]
    assert isinstance(app, ImageRef) and isinstance(other, ImageRef)
    name = f"{registry.host}/test/moving"
    subprocess.run(  # NAME:latest is app; NAME:old is other, pushed as a Docker v2 manifest
        ["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false"]
        + [f"docker://{app}", f"docker://{name}:latest"],
        check=True,
    )
    subprocess.run(
        ["skopeo", "copy", "-q", "-f", "v2s2", "--src-tls-verify=false", "--dest-tls-verify=false"]
        + [f"docker://{other}", f"docker://{name}:old"],
        check=True,
    )
    docker_digest = (
        "sha256:"
        + hashlib.sha256(
            subprocess.run(
                ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}:old"],
                capture_output=True,
                check=True,
            ).stdout
        ).hexdigest()
    )
    per_arch = {
        arch: stored_image(source, ImageRef.parse(f"local/moving-{arch}"), [random_layer(source, 20_000, arch)], arch)
        for arch in ("amd64", "arm64")
    }
    index_digest = push_index(source, per_arch, f"{name}:multi")
    cache = tmp_path / "cache"
    store = Store(cache)
    latest = pulls.pull(store, ImageRef.parse(name), network=NET)
    assert latest == pushed["digest"]
    converted = pulls.pull(store, ImageRef.parse(f"{name}@{docker_digest}"), network=NET)
    for arch in ("amd64", "arm64"):
        assert pulls.pull(store, ImageRef.parse(f"{name}@{index_digest}"), network=NET, arch=arch) == per_arch[arch]
    assert store.lookup(ImageRef.parse(f"{name}:latest")) == latest  # the tag kept its own image
    assert {str(ref) for ref, _ in store.names()} == {
        f"{name}:latest",
        f"{name}@{docker_digest}",
        f"{name}@{index_digest}",
    }
    upkeep_cache.gc(cache)  # by-digest pulls are names too: a gc keeps them
    events: list[Event] = []
    found = pulls.ensure_image(store, ImageRef.parse(f"{name}@{docker_digest}"), network=NET, listener=events.append)
    assert found.manifest_digest == converted and converted != docker_digest
    for arch in ("amd64", "arm64"):
        resolved = pulls.ensure_image(
            store, ImageRef.parse(f"{name}@{index_digest}"), network=NET, arch=arch, listener=events.append
        )
        assert resolved.manifest_digest == per_arch[arch]
    assert events == []  # every one resolved from the store, none pulled again
    assert upkeep_cache.rm(cache, f"{name}@{index_digest}") and store.lookup(ImageRef.parse(name)) == latest


def test_finished_blobs_are_never_fetched_again(pushed: dict[str, object], registry: Registry, tmp_path: Path):
    store = Store(tmp_path / "cache")
    proxy = FaultProxy(registry.port)
    try:
        ref = ImageRef.parse(f"{proxy.host}/test/app:v1")
        pulls.pull(store, ref, network=NET)
        pulls.pull(store, ref, network=NET)  # the next build
        pulls.pull(store, ImageRef.parse(f"{proxy.host}/test/other:v1"), network=NET)  # another spec
        layers = [blob for blob in proxy.completed_blobs() if blob not in configs(store)]
        assert len(layers) == len(set(layers)) == 4 + 1  # the shared bottom layer came once
    finally:
        proxy.stop()


def test_pull_survives_cuts_resets_stalls_and_errors(pushed: dict[str, object], registry: Registry, tmp_path: Path):
    faults = [
        Fault("cut"),
        None,
        Fault("reset", at=0.3),
        Fault("status", status=500),
        Fault("status", status=503),
        Fault("status", status=429, retry_after=1),
        Fault("cut", at=0.9),
    ]
    proxy = FaultProxy(registry.port, Plan([Script(BLOBS, faults), Script("/manifests/", [Fault("reset")])]))
    events: list[Event] = []
    store = Store(tmp_path / "cache")
    try:
        ref = ImageRef.parse(f"{proxy.host}/test/app:v1")
        started = time.monotonic()
        digest = pulls.pull(store, ref, network=NET, listener=events.append)
        elapsed = time.monotonic() - started
    finally:
        proxy.stop()
    assert digest == pushed["digest"]
    completed = [blob for blob in proxy.completed_blobs() if blob not in configs(store)]
    assert len(completed) == len(set(completed)) == 4, "a finished blob was fetched again"
    image_size = sum(layer.size for layer in store.image(ref).layers) + 2_000  # the config, fetched per copy
    cut = sum(t.body_bytes for t in proxy.transfers if t.blob and not t.complete)
    assert proxy.blob_bytes() <= image_size * 1.02 + cut
    retries = [e for e in events if e.kind is EventKind.RETRY]
    assert len(retries) >= 3 and elapsed < 20
    assert events[-1].kind is EventKind.DONE and events[-1].attempt == len(retries) + 1


def test_a_blob_corrupted_in_transit_never_lands_and_is_fetched_again(
    pushed: dict[str, object], registry: Registry, tmp_path: Path
):
    proxy = FaultProxy(registry.port, Plan([Script(BLOBS, [Fault("flip", at=0.7)])]))
    events: list[Event] = []
    store = Store(tmp_path)
    try:
        ref = ImageRef.parse(f"{proxy.host}/test/app:v1")
        assert pulls.pull(store, ref, network=NET, listener=events.append) == pushed["digest"]
    finally:
        proxy.stop()
    retries = [e.message for e in events if e.kind is EventKind.RETRY]
    assert len(retries) == 1 and "did not match" in retries[0].lower()
    assert all(store.verify_blob(layer.digest) for layer in store.image(ref).layers)


def test_giving_up_says_how_to_try_harder(pushed: dict[str, object], registry: Registry, tmp_path: Path):
    proxy = FaultProxy(registry.port, Plan([Script(BLOBS, [Fault("cut", at=0.2)], repeat=True)]))
    try:
        network = Network(retry=RetryPolicy(attempts=3, timeout=10, backoff=0.01))
        with pytest.raises(TransportError, match=r"after 3 attempts \(.*unexpected EOF\).*--retries and --timeout"):
            pulls.pull(Store(tmp_path), ImageRef.parse(f"{proxy.host}/test/app:v1"), network=network)
    finally:
        proxy.stop()


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        (RetryPolicy(attempts=3, timeout=60, stall=1.0, backoff=0.05), "stalled: no new byte for 1 s"),
        (RetryPolicy(attempts=3, timeout=2, stall=60, backoff=0.05), "deadline exceeded"),  # skopeo's own timeout
    ],
)
def test_a_stall_becomes_a_retry(
    policy: RetryPolicy, said: str, pushed: dict[str, object], registry: Registry, tmp_path: Path
):
    proxy = FaultProxy(registry.port, Plan([Script(BLOBS, [Fault("stall", at=0.5, seconds=30)])]))
    events: list[Event] = []
    try:
        ref = ImageRef.parse(f"{proxy.host}/test/app:v1")
        started = time.monotonic()
        assert (
            pulls.pull(Store(tmp_path), ref, network=Network(retry=policy), listener=events.append) == pushed["digest"]
        )
        assert time.monotonic() - started < 5
    finally:
        proxy.stop()
    retries = [e.message for e in events if e.kind is EventKind.RETRY]
    assert len(retries) == 1 and said in retries[0]


def test_corrupt_blob_in_store_is_healed_with_a_warning(pushed: dict[str, object], tmp_path: Path):
    store = Store(tmp_path / "cache")
    ref = pushed["ref"]
    assert isinstance(ref, ImageRef)
    pulls.pull(store, ref, network=NET)
    victim = store.blob_path(store.image(ref).layers[1].digest)
    victim.chmod(0o644)
    victim.write_bytes(b"rotten" + victim.read_bytes()[6:])
    events: list[Event] = []
    pulls.pull(store, ref, network=NET, listener=events.append)
    warnings = [e.message for e in events if e.kind is EventKind.WARNING]
    assert len(warnings) == 1 and "did not match its digest" in warnings[0]
    assert all(store.verify_blob(layer.digest) for layer in store.image(ref).layers)


def test_unknown_tag_fails_fast_naming_the_reference(registry: Registry, tmp_path: Path):
    ref = ImageRef.parse(f"{registry.host}/test/app:nope")
    started = time.monotonic()
    with pytest.raises(ImageNotFound, match=r"test/app:nope was not found .*check the name and tag"):
        pulls.pull(Store(tmp_path), ref, network=NET)
    assert time.monotonic() - started < 3


def test_unauthorized_fails_fast_naming_the_registry(registry: Registry, tmp_path: Path):
    proxy = FaultProxy(registry.port, Plan([Script("/v2/", [Fault("status", status=401)], repeat=True)]))
    try:
        with pytest.raises(TransportError, match=rf"{proxy.host} refused access.*skopeo login {proxy.host}"):
            pulls.pull(Store(tmp_path), ImageRef.parse(f"{proxy.host}/test/app:v1"), network=NET)
        assert len(proxy.transfers) <= 2
    finally:
        proxy.stop()


def bcrypt_line(user: str, password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        crypt = pytest.importorskip("crypt")  # gone in Python 3.13; glibc's crypt does bcrypt
        return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n"


def test_credentials_come_from_the_auth_file(pushed: dict[str, object], source: Store, tmp_path: Path):
    with running_registry(tmp_path / "private", htpasswd=bcrypt_line("tester", "secret")) as private:
        ref = ImageRef.parse(f"{private.host}/team/app:v1")
        with pytest.raises(TransportError, match=rf"{private.host} refused access.*skopeo login {private.host}"):
            pulls.push(source, pushed["ref"], str(ref), network=NET)  # type: ignore[arg-type]
        token = base64.b64encode(b"tester:secret").decode()
        auth = tmp_path / "auth.json"
        auth.write_text(json.dumps({"auths": {private.host: {"auth": token}}}))
        network = Network.from_env({"REGISTRY_AUTH_FILE": str(auth)}, retry=FAST)
        pulls.push(source, pushed["ref"], str(ref), network=network)  # type: ignore[arg-type]
        assert pulls.pull(Store(tmp_path / "cache"), ref, network=network) == pushed["digest"]
        started = time.monotonic()
        with pytest.raises(TransportError, match=rf"{private.host} refused access"):
            pulls.pull(Store(tmp_path / "nocreds"), ref, network=NET)
        assert time.monotonic() - started < 3


def test_arch_picks_one_platform_of_an_index(source: Store, registry: Registry, tmp_path: Path):
    per_arch = {}
    for arch in ("amd64", "arm64"):
        layer = random_layer(source, 30_000, arch)
        per_arch[arch] = (stored_image(source, ImageRef.parse(f"local/multi-{arch}"), [layer], arch), layer)
    ref = ImageRef.parse(f"{registry.host}/test/multi:v1")
    push_index(source, {arch: digest for arch, (digest, _) in per_arch.items()}, str(ref))
    store = Store(tmp_path / "cache")
    digest = pulls.pull(store, ref, network=NET, arch="arm64")
    assert digest == per_arch["arm64"][0]
    assert store.image(ref).config["architecture"] == "arm64"
    held = blob_names(store)
    assert per_arch["arm64"][1].digest in held
    assert per_arch["amd64"][1].digest not in held and per_arch["amd64"][0] not in held
    with pytest.raises(BadInput, match=r"no linux/s390x image; it has linux/amd64, linux/arm64"):
        pulls.pull(store, ref, network=NET, arch="s390x")


def test_mirror_serves_docker_hub_names(pushed: dict[str, object], registry: Registry, tmp_path: Path):
    env = {"DISTROKIT_MIRRORS": f"docker.io=http://{registry.host}"}
    network = Network.from_env(env, retry=FAST)
    store = Store(tmp_path / "cache")
    hub_name = ImageRef.parse("test/app:v1")
    assert hub_name.domain == "docker.io"
    assert pulls.pull(store, hub_name, network=network) == pushed["digest"]
    assert store.lookup(hub_name) == pushed["digest"]


def test_push_names_and_keeps_the_digest(pushed: dict[str, object], source: Store, registry: Registry, tmp_path: Path):
    ref = pushed["ref"]
    assert isinstance(ref, ImageRef)
    dest = f"{registry.host}/copies/app:v2"
    assert pulls.push(source, ref, dest, network=NET) == pushed["digest"]
    assert pulls.pull(Store(tmp_path), ImageRef.parse(dest), network=NET) == pushed["digest"]
    with pytest.raises(ImageNotFound, match="pull or build it first"):
        pulls.push(source, ImageRef.parse("local/absent:v1"), dest, network=NET)


def test_mirror_rules():
    assert parse_mirror("http://127.0.0.1:5000").registry == "*"
    assert parse_mirror("index.docker.io=https://m.example/x/").location == "m.example/x"
    with pytest.raises(BadInput, match="must start with http"):
        parse_mirror("docker.io=mirror.example")
    network = Network.from_env(
        {"DISTROKIT_MIRRORS": "docker.io=http://far.example"}, mirrors=["docker.io=https://m.example"]
    )
    assert network.mirrors == (parse_mirror("docker.io=https://m.example"),)
    plain = Network.from_env({}, mirrors=["http://far.example:5000"])
    with pytest.raises(BadInput, match="--insecure-registry far.example:5000"):
        transport.resolve(ImageRef.parse("redis"), plain)
    allowed = Network.from_env({"DISTROKIT_INSECURE_REGISTRIES": "far.example"}, mirrors=["http://far.example:5000"])
    endpoint = transport.resolve(ImageRef.parse("redis@sha256:" + "a" * 64), allowed)
    assert (endpoint.url, endpoint.tls_verify) == ("docker://far.example:5000/library/redis@sha256:" + "a" * 64, False)
    assert transport.resolve(ImageRef.parse("quay.io/x/y:1"), Network()).tls_verify


def test_authfile_is_passed_as_skopeo_expects(tmp_path: Path):
    auth = tmp_path / "auth.json"
    auth.write_text("{}")
    assert Network.from_env({"REGISTRY_AUTH_FILE": str(auth)}).authfile == auth
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text("{}")
    env = {"DOCKER_CONFIG": str(docker), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "XDG_CONFIG_HOME": str(tmp_path)}
    assert Network.from_env(env).authfile == docker / "config.json"
    os.makedirs(tmp_path / "run" / "containers")
    (tmp_path / "run" / "containers" / "auth.json").write_text("{}")
    assert Network.from_env(env).authfile is None  # skopeo finds its own file first


def test_cli_pull_plain_lines_and_quiet(pushed: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    ref = str(pushed["ref"])
    assert cli.main(["--cache", str(tmp_path / "c1"), "pull", ref, "--retries", "2", "--timeout", "30"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("test/app:v1: started")
    assert "in " in lines[1] and "/s), 0 retries" in lines[1]
    assert lines[2] == f"{ImageRef.parse(ref).familiar()} {pushed['digest']}"
    assert cli.main(["--cache", str(tmp_path / "c2"), "pull", "-q", ref]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main(["--cache", str(tmp_path / "c2"), "pull", "-q", ref.replace(":v1", ":absent")]) == 2
    assert "was not found" in capsys.readouterr().err


def test_progress_bar_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, highlight=False)
    with cli_transfer.TransferDisplay(console, quiet=False, verb="pull") as display:
        display(Event(EventKind.START, "app"))
        display(Event(EventKind.PROGRESS, "app", bytes=5_000_000))
        display(Event(EventKind.RETRY, "app", bytes=5_000_000, message="unexpected EOF", seconds=0.5))
        display(Event(EventKind.DONE, "app", bytes=9_000_000, attempt=2, seconds=1.0))
    text = out.getvalue()
    assert "pull app: attempt 1 failed (unexpected EOF); retrying in 0.5 s" in text
    assert "9.0/9.0 MB" in text and "1 retry" in text


def test_pkg_push_builds_and_pushes_a_component(registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    folder = tmp_path / "hello"
    folder.mkdir()
    (folder / "component.yml").write_text("files:\n  - path: etc/hello\n    contents: hi\n")
    cache = str(tmp_path / "cache")
    assert cli.main(["--cache", cache, "pkg", "push", str(folder), "--to", registry.host]) == 0
    dest, digest = capsys.readouterr().err.splitlines()[-1].split()
    assert dest.startswith(f"{registry.host}/distrokit/hello:")
    assert pulls.pull(Store(tmp_path / "other"), ImageRef.parse(dest), network=NET) == digest
    assert cli.main(["--cache", cache, "push", "-q", dest.split("/", 1)[1], f"{registry.host}/again/hello:v1"]) == 0


def test_pkg_push_tag_also_pushes_latest(registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """`pkg push --tag latest`: the image under its key's tag and under latest, one digest (LinuxKit's habit)."""
    folder = tmp_path / "tagged"
    folder.mkdir()
    (folder / "component.yml").write_text("files:\n  - path: etc/tagged\n    contents: hi\n")
    cache = str(tmp_path / "cache")
    assert cli.main(["--cache", cache, "pkg", "push", str(folder), "--to", registry.host, "--tag", "latest"]) == 0
    keyed, latest = (line.split() for line in capsys.readouterr().err.splitlines()[-2:])
    assert latest[0] == f"{registry.host}/distrokit/tagged:latest" and keyed[1] == latest[1]
    assert pulls.pull(Store(tmp_path / "other"), ImageRef.parse(latest[0]), network=NET) == keyed[1]


def test_build_takes_the_platform_asked_for(source: Store, registry: Registry, tmp_path: Path) -> None:
    import tarfile

    from conftest import build

    per_arch = {}
    for arch in ("amd64", "arm64"):
        layer = random_layer(source, 1_000, f"only-{arch}")
        per_arch[arch] = stored_image(source, ImageRef.parse(f"local/built-{arch}"), [layer], arch)
    ref = f"{registry.host}/test/built:v1"
    push_index(source, per_arch, ref)
    spec = tmp_path / "multi.yml"
    spec.write_text(f"init:\n  - {ref}\n")
    for arch in ("arm64", "amd64"):
        built = build(spec, tmp_path / "cache", tmp_path / arch, formats=("tar",), arch=arch, network=NET)
        with tarfile.open(built.prefix.with_name("multi.tar")) as archive:
            names = set(archive.getnames())
        assert f"only-{arch}" in names and not {"only-amd64", "only-arm64"} - {f"only-{arch}"} & names
