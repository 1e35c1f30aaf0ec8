"""Signing what `push` and `pkg push` send: skopeo signs (a GPG key, or a sigstore private key) and stores
the signature where registries.d says, the place a policy's readers look.

skopeo pushes the image first and signs it after, so a key it cannot use, or a registry with no
signature store configured, would leave the image pushed unsigned. Both are checked before the push:
the configuration is read, and a tiny image is signed into a scratch folder with the same key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..fsutil import canonical_json, write_bytes_atomic
from . import transport, trust
from .images import MEDIA_MANIFEST, Store, layout_files
from .transport import Endpoint, Job, Network, SkopeoFailed


@dataclass(frozen=True)
class Signer:
    """A GPG key (by fingerprint, from GNUPGHOME) or a sigstore private key file, and its passphrase file."""

    gpg_key: str | None = None
    sigstore_key: Path | None = None
    passphrase_file: Path | None = None

    @classmethod
    def from_options(cls, gpg_key: str | None, sigstore_key: str | None, passphrase_file: str | None) -> Signer | None:
        if gpg_key and sigstore_key:
            raise BadInput("--sign-by and --sign-by-sigstore: sign with one key at a time")
        if not gpg_key and not sigstore_key:
            if passphrase_file:
                raise BadInput("--sign-passphrase-file needs --sign-by or --sign-by-sigstore")
            return None
        if sigstore_key and not passphrase_file:  # skopeo would prompt for it, and a push has no terminal
            raise BadInput("--sign-by-sigstore needs --sign-passphrase-file FILE (the key's passphrase)")
        for path in (sigstore_key, passphrase_file):
            if path and not Path(path).is_file():
                raise BadInput(f"{path}: no such file (a signing key or its passphrase file)")
        return cls(
            gpg_key or None,
            Path(sigstore_key).absolute() if sigstore_key else None,
            Path(passphrase_file).absolute() if passphrase_file else None,
        )

    @property
    def name(self) -> str:
        return f"GPG key {self.gpg_key}" if self.gpg_key else f"sigstore key {self.sigstore_key}"

    def flags(self) -> list[str]:
        if self.gpg_key:
            flags = ["--sign-by", self.gpg_key]
        else:
            flags = ["--sign-by-sigstore-private-key", str(self.sigstore_key)]
        return flags + (["--sign-passphrase-file", str(self.passphrase_file)] if self.passphrase_file else [])


def check_signer(store: Store, signer: Signer, endpoint: Endpoint, network: Network) -> None:
    """Before a signed push: the signature has a place to go, and skopeo can sign with the key."""
    sigstore = signer.sigstore_key is not None
    folders = network.trust.signature_folders()
    settings = trust.store_settings(folders, endpoint.location)
    if not trust.writes_signatures(settings, sigstore):
        wanted = "use-sigstore-attachments: true" if sigstore else "lookaside-staging: file:///DIR"
        raise BadInput(
            f"push {endpoint.name} signed: no registries.d file in {', '.join(map(str, folders))} gives "
            f"{endpoint.registry} a place for signatures: write `docker: {{{endpoint.registry}: {{{wanted}}}}}` "
            f"in a .yaml file there and name the folder with --registries-d (or {trust.REGISTRIES_D_ENV})"
        )
    with store.tempdir("sign-probe-") as scratch:
        layout = _probe_image(scratch / "image")
        args = ("--insecure-policy", "copy", "--quiet", *signer.flags(), "--sign-identity", endpoint.location)
        args += (f"oci:{layout}:probe", f"dir:{scratch}/out")
        try:
            transport.run(Job(args, "signing probe"), transport.RetryPolicy(attempts=1, timeout=60))
        except SkopeoFailed as exc:
            raise _cannot_sign(signer, exc.failure.detail) from exc


def _cannot_sign(signer: Signer, detail: str) -> BadInput:
    detail = detail.removeprefix("creating signature: ")
    if trust.SIGSTORE_DISABLED in detail:
        return BadInput(
            f"cannot sign with the {signer.name}: this skopeo was built without sigstore (Debian 12's "
            "skopeo 1.9.3); sign with a GPG key (--sign-by FINGERPRINT) or use a skopeo built with sigstore"
        )
    hint = "check the fingerprint with `gpg --list-secret-keys` and GNUPGHOME" if signer.gpg_key else "check the key"
    return BadInput(f"cannot sign with the {signer.name} ({detail}): {hint}; nothing was pushed")


def _probe_image(layout: Path) -> Path:
    """An OCI layout holding one image without layers: enough for skopeo to sign something."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    config = canonical_json({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_put(blobs, config)},
            "layers": [],
        }
    )
    descriptor = {"mediaType": MEDIA_MANIFEST, **_put(blobs, manifest)}
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": "probe"}
    for name, data in layout_files(descriptor).items():
        write_bytes_atomic(layout / name, data)
    return layout


def _put(blobs: Path, data: bytes) -> dict[str, object]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.partition(":")[2]).write_bytes(data)
    return {"digest": digest, "size": len(data)}
