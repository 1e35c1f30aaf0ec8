"""buildlib.release.provenance and `build --provenance` / `attest verify`: a signed in-toto statement of
SLSA v1 provenance beside the outputs, verified with the public key, refused after one output byte or
one subject changes; deterministic with an ed25519 key. Keys are made with openssl, as users make them."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from conftest import SPECS, Built, snapshot_store

from buildlib import cli
from buildlib.errors import BadInput
from buildlib.release import provenance


def keypair(folder: Path, algorithm: str) -> tuple[Path, Path]:
    private, public = folder / f"{algorithm}.pem", folder / f"{algorithm}.pub.pem"
    options = (
        ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        if algorithm == "p256"
        else ["-algorithm", algorithm]
    )
    subprocess.run(["openssl", "genpkey", *options, "-out", str(private)], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout", "-out", str(public)], check=True)
    return private, public


def signed_outputs(tmp_path: Path, algorithm: str) -> tuple[Path, Path, Path]:
    """Two output files, their signed statement, and the public key."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "x-kernel").write_bytes(b"kernel bytes")
    (out / "x-cmdline").write_text("console=ttyS0")
    spec = tmp_path / "x.yml"
    spec.write_text("init: [busybox]\n")
    inputs = provenance.Inputs(
        (spec,),
        {"name": "x"},
        (provenance.Dependency("docker.io/library/busybox:latest", "sha256:" + "a" * 64),),
        {"distrokit": "0"},
    )
    private, public = keypair(tmp_path, algorithm)
    document = provenance.statement([out / "x-kernel", out / "x-cmdline"], inputs)
    attestation = out / "x.intoto.jsonl"
    provenance.write(provenance.sign(document, private), attestation)
    return attestation, public, private


@pytest.mark.parametrize("algorithm", ["ed25519", "p256"])
def test_a_signed_statement_verifies_and_names_every_output(tmp_path: Path, algorithm: str) -> None:
    attestation, public, private = signed_outputs(tmp_path, algorithm)
    document = provenance.verify(attestation, public, attestation.parent)
    assert document["predicateType"] == "https://slsa.dev/provenance/v1"
    assert [s["name"] for s in document["subject"]] == ["x-cmdline", "x-kernel"]
    dependency = document["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    assert dependency == {"uri": "docker.io/library/busybox:latest", "digest": {"sha256": "a" * 64}}
    assert provenance.verify(attestation, private, attestation.parent)  # the private key holds the public one


def test_one_changed_output_byte_is_refused_naming_the_file(tmp_path: Path) -> None:
    attestation, public, _ = signed_outputs(tmp_path, "ed25519")
    (attestation.parent / "x-kernel").write_bytes(b"kernel bytez")
    with pytest.raises(provenance.ProvenanceError, match="x-kernel: sha256 .* but the provenance names"):
        provenance.verify(attestation, public, attestation.parent)


def test_a_changed_subject_breaks_the_signature(tmp_path: Path) -> None:
    attestation, public, _ = signed_outputs(tmp_path, "ed25519")
    envelope = json.loads(attestation.read_text())
    document = json.loads(base64.b64decode(envelope["payload"]))
    document["subject"][0]["digest"]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(document).encode()).decode()
    attestation.write_text(json.dumps(envelope) + "\n")
    with pytest.raises(provenance.ProvenanceError, match="no signature verifies"):
        provenance.verify(attestation, public, attestation.parent)


def test_another_key_does_not_verify_and_an_rsa_key_does_not_sign(tmp_path: Path) -> None:
    attestation, _, _ = signed_outputs(tmp_path, "ed25519")
    _, other = keypair(_fresh(tmp_path / "other"), "p256")
    with pytest.raises(provenance.ProvenanceError, match="no signature verifies"):
        provenance.verify(attestation, other, attestation.parent)
    rsa, _ = keypair(_fresh(tmp_path / "rsa"), "RSA")
    with pytest.raises(BadInput, match="ed25519 or ECDSA P-256"):
        provenance.check_signing_key(rsa)


def _fresh(folder: Path) -> Path:
    folder.mkdir()
    return folder


def test_build_provenance_and_attest_verify(
    minimal_build: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private, public = keypair(tmp_path, "ed25519")
    out = tmp_path / "out"
    # its own copy of the store: a build of minimal.yml under its own name into another folder would take
    # over the shared store's record of the `minimal` state (its output files), which other tests check
    store = snapshot_store(minimal_build.cache, tmp_path / "store")
    build = ["--cache", str(store), "build", str(SPECS / "minimal.yml"), "--dir", str(out)]
    assert cli.main([*build, "--provenance", str(private)]) == 0
    attestation = out / "minimal.intoto.jsonl"
    first = attestation.read_bytes()
    document = provenance.verify(attestation, public, out)
    assert {s["name"] for s in document["subject"]} == {"minimal-kernel", "minimal-initrd.img", "minimal-cmdline"}
    uris = [d["uri"] for d in document["predicate"]["buildDefinition"]["resolvedDependencies"]]
    assert any(uri.startswith("docker.io/distrokit/kernel:") for uri in uris)
    assert any(uri.startswith("pkg:deb/debian/busybox-static@") for uri in uris)  # every .deb, with its sha256
    assert document["predicate"]["runDetails"]["builder"]["version"]["distrokit"]
    capsys.readouterr()
    assert cli.main(["attest", "verify", str(attestation), "--key", str(public)]) == 0
    assert "signature verified; 3 output files match" in capsys.readouterr().err

    assert cli.main([*build, "--provenance", str(private)]) == 0  # nothing changed: the same statement, bytes
    assert attestation.read_bytes() == first

    with open(out / "minimal-cmdline", "a") as cmdline:
        cmdline.write(" init=/bin/sh")
    assert cli.main(["attest", "verify", str(attestation), "--key", str(public)]) == 1
    assert "minimal-cmdline: sha256" in capsys.readouterr().err


def test_a_bad_key_fails_before_anything_is_built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "key.pem"
    key.write_text("not a key")
    spec = SPECS / "minimal.yml"
    assert (
        cli.main(["--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(tmp_path), "--provenance", str(key)])
        == 2
    )
    assert "not an unencrypted PEM private key" in capsys.readouterr().err
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob("minimal*"))
