"""GPG keys, containers policies and registries.d folders for the signature tests: real gpg, batch mode,
no passphrase, a temporary GNUPGHOME (set in the environment, where skopeo's gpgme reads it)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpgKey:
    fingerprint: str
    public: Path  # the armored public key a policy's signedBy names


def make_key(home: Path, name: str) -> GpgKey:
    """A new ed25519 signing key in the GnuPG home `home`; its public key exported beside it."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet", "--passphrase", "", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg, "--quick-gen-key", f"{name} <{name}@example.com>", "ed25519", "sign", "never"],
        env=env,
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        [*gpg, "--with-colons", "--list-secret-keys", f"{name}@example.com"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    public = home.parent / f"{name}.pub.asc"
    exported = subprocess.run([*gpg, "--armor", "--export", fingerprint], env=env, check=True, capture_output=True)
    public.write_bytes(exported.stdout)
    return GpgKey(fingerprint, public)


@contextlib.contextmanager
def gnupg_home(home: Path) -> Iterator[Path]:
    """GNUPGHOME pointed at `home` for this process and its children; its gpg-agent stopped afterwards."""
    before = os.environ.get("GNUPGHOME")
    os.environ["GNUPGHOME"] = str(home)
    try:
        yield home
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], check=False, capture_output=True)
        if before is None:
            os.environ.pop("GNUPGHOME", None)
        else:
            os.environ["GNUPGHOME"] = before


def signed_by(key: GpgKey) -> dict[str, str]:
    return {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(key.public)}


def write_policy(path: Path, scopes: dict[str, list[dict[str, str]]]) -> Path:
    """A policy accepting anything but the docker `scopes` given ({scope: requirements})."""
    policy = {"default": [{"type": "insecureAcceptAnything"}], "transports": {"docker": scopes}}
    path.write_text(json.dumps(policy, indent=2))
    return path


def write_registries_d(folder: Path, registry: str, signatures: Path) -> Path:
    """A registries.d folder keeping `registry`'s signatures in the folder `signatures` (read and write)."""
    folder.mkdir(parents=True, exist_ok=True)
    signatures.mkdir(parents=True, exist_ok=True)
    (folder / "test.yaml").write_text(f"docker:\n  {registry}:\n    lookaside: file://{signatures}\n")
    return folder
