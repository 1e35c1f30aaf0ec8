"""Image signatures against a real docker-registry on loopback: GPG keys made here, skopeo signs at push
and enforces the containers policy at pull; a refused image leaves nothing in the store."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry import Registry, random_layer, stored_image
from signkit import GpgKey, gnupg_home, make_key, signed_by, write_policy, write_registries_d

from buildlib.errors import BadInput, ImageNotFound
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls, remotecache
from buildlib.store.images import Store
from buildlib.store.signing import Signer
from buildlib.store.transport import Network, RetryPolicy
from buildlib.store.trust import ImageRefused, Trust, read_policy, rule_for

pytestmark = pytest.mark.registry

FAST = RetryPolicy(attempts=2, timeout=30, backoff=0.05)


class Keys:
    def __init__(self, folder: Path) -> None:
        self.home = folder / "gnupg"
        self.ours: GpgKey = make_key(self.home, "ours")
        self.stranger: GpgKey = make_key(self.home, "stranger")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    keys = Keys(tmp_path_factory.mktemp("keys"))
    with gnupg_home(keys.home):
        yield keys


@pytest.fixture(scope="module")
def signatures(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registries.d folder: the registry's signatures in a lookaside folder beside it."""
    folder = tmp_path_factory.mktemp("trust")
    return write_registries_d(folder / "registries.d", registry.host, folder / "signatures")


@pytest.fixture(scope="module")
def images(
    keys: Keys, signatures: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """`trust/signed:1` signed with our key, `trust/unsigned:1` not: {name: manifest digest}."""
    source = Store(tmp_path_factory.mktemp("source"))
    network = Network(retry=FAST, trust=Trust(registries_d=signatures))
    pushed = {}
    for name, signer in (("signed", Signer(keys.ours.fingerprint)), ("unsigned", None)):
        ref = ImageRef.parse(f"example.com/{name}:1")
        stored_image(source, ref, [random_layer(source, 300_000, name)])
        dest = f"{registry.host}/trust/{name}:1"
        pushed[name] = pulls.push(source, ref, dest, network=network, signer=signer)
    return pushed


def policy_network(tmp_path: Path, registry: Registry, signatures: Path, key: GpgKey) -> Network:
    policy = write_policy(tmp_path / "policy.json", {f"{registry.host}/trust": [signed_by(key)]})
    return Network(retry=FAST, trust=Trust.from_env({}, str(policy), str(signatures)))


def store_state(store: Store) -> tuple[set[str], list[str], list[str]]:
    """What a pull can leave: blob files, names, and anything in the store's scratch folder."""
    blobs = {p.name for p in (store.blobs / "sha256").iterdir()} if (store.blobs / "sha256").is_dir() else set()
    scratch = sorted(p.name for p in store.tmp.iterdir()) if store.tmp.is_dir() else []
    return blobs, sorted(str(ref) for ref, _ in store.names()), scratch


def test_signature_lands_in_the_lookaside_folder(images: dict[str, str], signatures: Path):
    signed = images["signed"].replace(":", "=")
    found = sorted(
        p.relative_to(signatures.parent / "signatures").as_posix() for p in signatures.parent.rglob("signature-*")
    )
    assert found == [f"trust/signed@{signed}/signature-1"]


def test_policy_accepts_the_signed_image_and_refuses_the_unsigned(
    images: dict[str, str], registry: Registry, signatures: Path, keys: Keys, tmp_path: Path
):
    store = Store(tmp_path / "cache")
    network = policy_network(tmp_path, registry, signatures, keys.ours)
    signed = ImageRef.parse(f"{registry.host}/trust/signed:1")
    assert pulls.pull(store, signed, network=network) == images["signed"]
    before = store_state(store)
    with pytest.raises(ImageRefused) as refused:
        pulls.pull(store, ImageRef.parse(f"{registry.host}/trust/unsigned:1"), network=network)
    message = str(refused.value)
    assert "\n" not in message and f"{registry.host}/trust/unsigned:1" in message
    assert f"rule signedBy GPGKeys {keys.ours.public} (scope docker:{registry.host}/trust)" in message
    assert "no signature exists" in message
    assert store_state(store) == before  # no blob, no name, no scratch folder of the refused image


def test_a_signature_by_another_key_is_refused_naming_that_key(
    images: dict[str, str], registry: Registry, signatures: Path, keys: Keys, tmp_path: Path
):
    store = Store(tmp_path / "cache")
    network = policy_network(tmp_path, registry, signatures, keys.stranger)
    with pytest.raises(ImageRefused, match=f"its signature is by key {keys.ours.fingerprint}, which the rule"):
        pulls.pull(store, ImageRef.parse(f"{registry.host}/trust/signed:1"), network=network)
    assert store_state(store) == (set(), [], [])


def test_by_digest_the_signature_still_verifies(
    images: dict[str, str], registry: Registry, signatures: Path, keys: Keys, tmp_path: Path
):
    """A lock pins digests: a pinned pull checks the same signature (the identity's repository matches)."""
    store = Store(tmp_path / "cache")
    network = policy_network(tmp_path, registry, signatures, keys.ours)
    ref = ImageRef.parse(f"{registry.host}/trust/signed:1")
    image = pulls.ensure_pinned(store, ref, images["signed"], network=network)
    assert image.manifest_digest == images["signed"]


def test_without_a_policy_nothing_changes(images: dict[str, str], registry: Registry, tmp_path: Path):
    assert Trust.from_env({}).pull_flags() == []
    store = Store(tmp_path / "cache")
    unsigned = ImageRef.parse(f"{registry.host}/trust/unsigned:1")
    assert pulls.pull(store, unsigned, network=Network(retry=FAST)) == images["unsigned"]


def test_a_refused_cache_entry_is_built_here_instead(
    images: dict[str, str], registry: Registry, signatures: Path, keys: Keys, tmp_path: Path
):
    """The shared build cache passes through the same policy: a refused entry is an ArtifactRejected
    (the task is built locally), and the store keeps nothing of it."""
    source = Store(tmp_path / "source")
    ref = ImageRef.parse("example.com/cached:1")
    stored_image(source, ref, [random_layer(source, 1_000, "cached")])
    repository = remotecache.Repository.parse(f"{registry.host}/trust/cache")
    remotecache.push_image(source, ref, repository, "component", "k1", Network(retry=FAST))
    store = Store(tmp_path / "cache")
    network = policy_network(tmp_path, registry, signatures, keys.ours)
    with pytest.raises(remotecache.ArtifactRejected, match="refused by the policy"):
        remotecache.fetch_image(store, repository, "component", "k1", ref, network, "amd64")
    assert store_state(store)[:2] == (set(), [])


def test_signing_is_checked_before_anything_is_pushed(
    images: dict[str, str], registry: Registry, signatures: Path, tmp_path: Path
):
    source = Store(tmp_path / "source")
    ref = ImageRef.parse("example.com/never:1")
    stored_image(source, ref, [random_layer(source, 1_000, "never")])
    signed = Network(retry=FAST, trust=Trust(registries_d=signatures))
    with pytest.raises(BadInput, match="cannot sign with the GPG key 0123ABCD"):
        pulls.push(source, ref, f"{registry.host}/trust/never:1", network=signed, signer=Signer("0123ABCD"))
    nowhere = Network(retry=FAST, trust=Trust(registries_d=tmp_path))  # a registries.d folder with no file
    with pytest.raises(BadInput, match=f"gives {registry.host} a place for signatures"):
        pulls.push(source, ref, f"{registry.host}/trust/never:1", network=nowhere, signer=Signer("0123ABCD"))
    with pytest.raises(ImageNotFound):  # neither refusal pushed the image unsigned
        pulls.inspect_pins(
            ImageRef.parse(f"{registry.host}/trust/never:1"), ["linux/amd64"], network=Network(retry=FAST)
        )


def test_sigstore_signing_says_what_this_skopeo_lacks(registry: Registry, signatures: Path, tmp_path: Path):
    """Debian 12's skopeo 1.9.3 is built without sigstore ("Debian-local change: sigstore disabled"): signing
    with a sigstore key is refused before the push, saying so; a skopeo with sigstore would read the key."""
    source = Store(tmp_path / "source")
    ref = ImageRef.parse("example.com/sigstore:1")
    stored_image(source, ref, [random_layer(source, 1_000, "sigstore")])
    (signatures / "sigstore.yaml").write_text(
        f"docker:\n  {registry.host}/trust/sigstore:\n    use-sigstore-attachments: true\n"
    )
    key = tmp_path / "cosign.key"
    key.write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nbm90IGEga2V5\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    (tmp_path / "passphrase").write_text("secret")
    signer = Signer.from_options(None, str(key), str(tmp_path / "passphrase"))
    network = Network(retry=FAST, trust=Trust(registries_d=signatures))
    try:
        with pytest.raises(BadInput, match="cannot sign with the sigstore key") as refused:
            pulls.push(source, ref, f"{registry.host}/trust/sigstore:1", network=network, signer=signer)
    finally:
        (signatures / "sigstore.yaml").unlink()
    version = subprocess.run(["skopeo", "--version"], capture_output=True, text=True, check=True).stdout
    debian_12 = version.split()[-1] == "1.9.3"  # this machine's: it must name what is missing
    assert ("built without sigstore" if debian_12 else "cannot sign") in str(refused.value)
    with pytest.raises(BadInput, match="needs --sign-passphrase-file"):
        Signer.from_options(None, str(key), None)


def test_policy_rules_are_chosen_as_containers_image_chooses(tmp_path: Path):
    policy = {
        "default": [{"type": "reject"}],
        "transports": {
            "docker": {
                "": [{"type": "insecureAcceptAnything"}],
                "example.com": [{"type": "reject"}],
                "example.com/team": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k.gpg"}],
                "example.com/team/app:1": [{"type": "insecureAcceptAnything"}],
                "*.corp.example": [{"type": "sigstoreSigned", "keyPath": "/cosign.pub"}],
            }
        },
    }
    rule = rule_for(policy, "docker", "example.com/team/web:2")
    assert rule.describe() == "signedBy GPGKeys /k.gpg (scope docker:example.com/team)"
    assert rule_for(policy, "docker", "example.com/team/app:1").scope == "docker:example.com/team/app:1"
    assert rule_for(policy, "docker", "example.com/other@sha256:" + "0" * 64).scope == "docker:example.com"
    assert rule_for(policy, "docker", "registry.corp.example:5000/x:1").scope == "docker:*.corp.example"
    assert rule_for(policy, "docker", "quay.io/x:1").scope == "docker:(transport default)"
    assert rule_for(policy, "oci", "/some/layout:tag").describe() == "reject (scope default)"


def test_a_broken_policy_is_bad_input_naming_file_and_line(tmp_path: Path):
    path = tmp_path / "policy.json"
    path.write_text('{\n  "default": [\n    {"type": "insecureAcceptAnything"},\n  ]\n}\n')
    with pytest.raises(BadInput, match=rf"policy {path}:4:3: not JSON"):
        read_policy(path)
    path.write_text(json.dumps({"default": [{"type": "signedby"}]}))
    with pytest.raises(BadInput, match="unknown type 'signedby'"):
        read_policy(path)
    with pytest.raises(BadInput, match="cannot read it"):
        Trust.from_env({"DISTROKIT_POLICY": str(tmp_path / "missing.json")})
