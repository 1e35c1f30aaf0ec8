"""Signed provenance of a release: an in-toto Statement with the SLSA v1 provenance predicate, in a DSSE
envelope signed with the builder's key (`build --provenance KEY.pem`, `attest verify`).

The statement names every output file with its sha256 (the subjects), what the build was asked (the
spec files' digests, the lock, the options), what it was made of (every image by manifest digest,
every .deb with its sha256) and the builder (distrokit's version, the host tools'). It holds no time
and no random id, so the same build gives the same statement; an ed25519 signature is deterministic
too, an ECDSA one is not. Keys are PEM files as `openssl genpkey` writes them (ed25519 or EC P-256).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, BuildError
from ..fsutil import canonical_json, sha256_file, write_bytes_atomic

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://distrokit.dev/build/v1"  # what externalParameters mean: a distrokit build of specs
SUFFIX = ".intoto.jsonl"


class ProvenanceError(BuildError):
    """Provenance that does not verify: a bad signature, or an output that is not what it names."""


@dataclass(frozen=True)
class Dependency:
    uri: str  # an image reference, or a Debian package URL (pkg:deb/debian/NAME@VERSION?arch=A)
    sha256: str
    name: str = ""


@dataclass(frozen=True)
class Inputs:
    """What the build was asked and what it was made of."""

    spec_files: tuple[Path, ...]
    options: Mapping[str, Any]
    dependencies: tuple[Dependency, ...]
    builder: Mapping[str, str]  # tool -> version
    lock_file: Path | None = None


def sha256_hex(path: Path) -> str:
    return sha256_file(path).removeprefix("sha256:")


def deb_uri(name: str, version: str, arch: str) -> str:
    """A package URL (purl) for a Debian package, as SBOMs and SLSA name them."""
    return f"pkg:deb/debian/{name}@{version}?arch={arch}"


def statement(subjects: Iterable[Path], inputs: Inputs) -> dict[str, Any]:
    """The in-toto Statement for the output files `subjects` (named by their file names)."""
    files = [{"path": str(path), "digest": {"sha256": sha256_hex(path)}} for path in inputs.spec_files]
    parameters: dict[str, Any] = {"specs": files, "options": dict(sorted(inputs.options.items()))}
    if inputs.lock_file is not None:
        parameters["lock"] = {"path": str(inputs.lock_file), "digest": {"sha256": sha256_hex(inputs.lock_file)}}
    dependencies = sorted(set(inputs.dependencies), key=lambda d: (d.uri, d.sha256))
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": path.name, "digest": {"sha256": sha256_hex(path)}} for path in sorted(subjects)],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": parameters,
                "resolvedDependencies": [_descriptor(d) for d in dependencies],
            },
            "runDetails": {"builder": {"id": BUILD_TYPE, "version": dict(sorted(inputs.builder.items()))}},
        },
    }


def _descriptor(dependency: Dependency) -> dict[str, Any]:
    found = {"uri": dependency.uri, "digest": {"sha256": dependency.sha256.removeprefix("sha256:")}}
    return {**found, "name": dependency.name} if dependency.name else found


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature covers (the type and the payload, with lengths)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _private_key(pem: bytes, where: str) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise BadInput(f"{where}: not an unencrypted PEM private key ({error})") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise BadInput(f"{where}: distrokit signs with ed25519 or ECDSA P-256 keys (`openssl genpkey -algorithm ed25519`)")


def check_signing_key(key_file: Path) -> None:
    """BadInput now, before a build, when `key_file` holds no key distrokit signs with."""
    _private_key(_read(key_file), str(key_file))


def _public_key(pem: bytes, where: str) -> Any:
    """The public key in `pem`, which may hold the public key or the private one."""
    from cryptography.hazmat.primitives import serialization

    if b"PRIVATE KEY" in pem:
        return _private_key(pem, where).public_key()
    try:
        return serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise BadInput(f"{where}: not a PEM public key ({error})") from None


def key_id(public_key: Any) -> str:
    """The sha256 of the public key's DER form: which key signed, without naming a file."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign(document: dict[str, Any], key_file: Path) -> dict[str, Any]:
    """The DSSE envelope of `document`, signed with the private key in `key_file`."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = _private_key(_read(key_file), str(key_file))
    payload = canonical_json(document)
    message = pae(PAYLOAD_TYPE, payload)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    else:
        signature = key.sign(message)
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }


def write(envelope: dict[str, Any], target: Path) -> None:
    """One envelope, one line: the JSON Lines form in-toto attestation bundles take."""
    write_bytes_atomic(target, canonical_json(envelope) + b"\n")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise BadInput(f"{path}: cannot read it ({error.strerror})") from None


def verify(attestation: Path, key_file: Path, folder: Path) -> dict[str, Any]:
    """The statement of `attestation` when a signature on it verifies with the key in `key_file` and every
    subject is in `folder` with its sha256; ProvenanceError naming what does not hold otherwise."""
    public = _public_key(_read(key_file), str(key_file))
    envelope = _envelope(attestation)
    payload = base64.b64decode(envelope["payload"])
    if not any(_verifies(public, sig, pae(envelope["payloadType"], payload)) for sig in envelope["signatures"]):
        raise ProvenanceError(f"{attestation}: no signature verifies with the key in {key_file}")
    document = json.loads(payload)
    if document.get("_type") != STATEMENT_TYPE or document.get("predicateType") != PREDICATE_TYPE:
        raise ProvenanceError(f"{attestation}: not an in-toto statement of SLSA v1 provenance")
    _check_subjects(document["subject"], folder, attestation)
    return dict(document)


def _envelope(attestation: Path) -> dict[str, Any]:
    lines = [line for line in _read(attestation).splitlines() if line.strip()]
    try:
        envelope = json.loads(lines[0]) if len(lines) == 1 else None
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict) or envelope.get("payloadType") != PAYLOAD_TYPE or "signatures" not in envelope:
        raise ProvenanceError(f"{attestation}: not one DSSE envelope of an in-toto statement")
    return envelope


def _verifies(public: Any, signature: Mapping[str, str], message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        raw = base64.b64decode(signature["sig"])
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(raw, message, ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(raw, message)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
    return True


def _check_subjects(subjects: Sequence[Mapping[str, Any]], folder: Path, attestation: Path) -> None:
    for subject in subjects:
        path = folder / subject["name"]
        wanted = subject["digest"]["sha256"]
        if not path.is_file():
            raise ProvenanceError(f"{attestation}: {subject['name']} is not in {folder}")
        found = sha256_hex(path)
        if found != wanted:
            raise ProvenanceError(f"{path}: sha256 {found}, but the provenance names {wanted}")
