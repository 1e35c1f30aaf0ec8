"""Image signatures: the containers policy skopeo enforces on the way in, and the signing of pushes.

distrokit checks no signature itself: skopeo reads the policy (containers-policy.json(5)) with its
global `--policy` flag and the signature stores with `--registries.d` (registries.d(5)), and refuses
an image before it copies a blob. This module finds the files, reads enough of them to say which rule
refused an image, and checks a signer before a push, because skopeo signs only after the image has
been pushed: a key it cannot use would leave the registry holding the image unsigned.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BadInput, BuildError

POLICY_ENV = "DISTROKIT_POLICY"
REGISTRIES_D_ENV = "DISTROKIT_REGISTRIES_D"
SIGSTORE_DISABLED = "sigstore disabled"  # Debian 12's skopeo 1.9.3 is built without sigstore (a Debian patch)
_REQUIREMENTS = ("insecureAcceptAnything", "reject", "signedBy", "sigstoreSigned", "signedBaseLayer")


class ImageRefused(BuildError):
    """The containers policy refused an image: unsigned, signed by a key it does not trust, or rejected."""


@dataclass(frozen=True)
class Rule:
    """The requirements the policy sets for one image, and the scope they were found under."""

    scope: str
    requirements: tuple[dict[str, Any], ...]

    def describe(self) -> str:
        shown = " and ".join(_requirement_text(req) for req in self.requirements) or "nothing"
        return f"{shown} (scope {self.scope})"


@dataclass(frozen=True)
class Trust:
    """The policy file and the registries.d folder skopeo is told of; None: skopeo's own defaults."""

    policy: Path | None = None
    registries_d: Path | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, policy: str | None = None, registries_d: str | None = None
    ) -> Trust:
        """Flags win over DISTROKIT_POLICY and DISTROKIT_REGISTRIES_D; a policy named is read now, so a
        missing or broken one is bad input before anything is pulled."""
        env = os.environ if env is None else env
        policy = policy or env.get(POLICY_ENV) or None
        folder = registries_d or env.get(REGISTRIES_D_ENV) or None
        trust = cls(Path(policy).absolute() if policy else None, Path(folder).absolute() if folder else None)
        if trust.policy is not None:
            read_policy(trust.policy)
        if trust.registries_d is not None and not trust.registries_d.is_dir():
            raise BadInput(f"registries.d folder {trust.registries_d} does not exist: create it or fix the path")
        return trust

    def registries_flags(self) -> list[str]:
        return ["--registries.d", str(self.registries_d)] if self.registries_d else []

    def pull_flags(self) -> list[str]:
        """skopeo's global flags for a copy into the store. Without a policy nothing changes (skopeo reads
        its default policy file, as before)."""
        return (["--policy", str(self.policy)] if self.policy else []) + self.registries_flags()

    def signature_folders(self) -> list[Path]:
        """Where skopeo looks for registries.d files: the folder named, else the user's, else the system's."""
        if self.registries_d is not None:
            return [self.registries_d]
        user = Path(os.environ.get("HOME", "/nonexistent")) / ".config" / "containers" / "registries.d"
        return [user] if user.is_dir() else [Path("/etc/containers/registries.d")]


# the policy ----------------------------------------------------------------------------------
def read_policy(path: Path) -> dict[str, Any]:
    """The policy file, checked as far as distrokit needs: JSON with a `default`, known requirement types."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BadInput(f"policy {path}: cannot read it ({exc.strerror or exc}): fix --policy or {POLICY_ENV}") from exc
    try:
        policy = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"policy {path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg})") from exc
    if not isinstance(policy, dict) or not isinstance(policy.get("default"), list):
        raise BadInput(f"policy {path}: it needs a `default` list of requirements (containers-policy.json(5))")
    for scope, requirements in _scopes(policy):
        for requirement in requirements:
            kind = requirement.get("type") if isinstance(requirement, dict) else None
            if kind not in _REQUIREMENTS:
                raise BadInput(
                    f"policy {path}: scope {scope!r} has a requirement of unknown type {kind!r}; "
                    f"known: {', '.join(_REQUIREMENTS)}"
                )
    return policy


def _scopes(policy: Mapping[str, Any]) -> Iterable[tuple[str, list[Any]]]:
    yield "default", policy["default"]
    for transport, scopes in (policy.get("transports") or {}).items():
        for scope, requirements in (scopes or {}).items():
            yield f"{transport}:{scope}", requirements if isinstance(requirements, list) else [requirements]


def rule_for(policy: Mapping[str, Any], transport: str, location: str) -> Rule:
    """The requirements the policy sets for `location` (a docker reference without `docker://`, or an oci:
    path), chosen as containers/image chooses: the most specific scope of the transport, else the
    transport's "" scope, else `default`."""
    scopes = (policy.get("transports") or {}).get(transport) or {}
    for scope in _candidates(transport, location):
        if scope in scopes:
            return Rule(f"{transport}:{scope or '(transport default)'}", tuple(scopes[scope]))
    return Rule("default", tuple(policy["default"]))


def _candidates(transport: str, location: str) -> list[str]:
    """Scopes from the most specific to the least: the reference, its repository, each namespace above it,
    the host, then `*.domain` wildcards (docker); then the transport's own default ""."""
    if transport != "docker":
        return [location, ""]
    repository = re.split(r"@|:(?=[^/]*$)", location, maxsplit=1)[0]
    found = [location, repository]
    parts = repository.split("/")
    found += ["/".join(parts[:count]) for count in range(len(parts) - 1, 0, -1)]
    labels = parts[0].split(":")[0].split(".")
    found += ["*." + ".".join(labels[start:]) for start in range(1, len(labels))]
    return [*dict.fromkeys(found), ""]


def _requirement_text(requirement: Mapping[str, Any]) -> str:
    kind = str(requirement.get("type"))
    if kind == "signedBy":
        keys = requirement.get("keyPath") or ", ".join(requirement.get("keyPaths") or ()) or "keyData"
        return f"signedBy {requirement.get('keyType', 'GPGKeys')} {keys}"
    if kind == "sigstoreSigned":
        return f"sigstoreSigned {requirement.get('keyPath') or 'keyData'}"
    return kind


def refused(policy_path: Path | None, name: str, transport: str, location: str, detail: str) -> ImageRefused:
    """One line naming the image, the rule that refused it and why (from skopeo's message)."""
    reason = _reason(detail.removeprefix("Source image rejected: "))
    if policy_path is None:
        return ImageRefused(f"image {name} refused by skopeo's default policy: {reason}")
    rule = rule_for(read_policy(policy_path), transport, location)
    return ImageRefused(f"image {name} refused by the policy {policy_path}: rule {rule.describe()}: {reason}")


def _reason(detail: str) -> str:
    if SIGSTORE_DISABLED in detail:
        return (
            "this skopeo was built without sigstore (Debian 12's skopeo 1.9.3), so a sigstoreSigned rule "
            "refuses every image: use a signedBy rule with GPG keys, or a skopeo built with sigstore"
        )
    fingerprint = re.search(r'Fingerprint:"([0-9A-Fa-f]+)"', detail)
    if detail.startswith("Invalid GPG signature") and fingerprint:
        return f"its signature is by key {fingerprint.group(1)}, which the rule does not trust"
    return detail[0].lower() + detail[1:] if detail else "no reason given"


# signature stores (registries.d) ---------------------------------------------------------------
def store_settings(folders: Iterable[Path], location: str) -> dict[str, Any]:
    """The registries.d settings for a docker `location`: its most specific `docker:` scope, else
    `default-docker` (registries.d(5))."""
    scoped: dict[str, dict[str, Any]] = {}
    default: dict[str, Any] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else ():
            data = _read_yaml(path)
            default = data.get("default-docker") or default
            scoped.update(data.get("docker") or {})
    for scope in _candidates("docker", location)[:-1]:
        if scope in scoped:
            return scoped[scope] or {}
    return default


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInput(f"registries.d file {path}: cannot read it ({exc})") from exc
    if data is not None and not isinstance(data, dict):
        raise BadInput(f"registries.d file {path}: it must be a mapping with `docker:` or `default-docker:`")
    return data or {}


def writes_signatures(settings: Mapping[str, Any], sigstore: bool) -> bool:
    """Whether skopeo can store a signature for a push with these settings."""
    if sigstore:
        return bool(settings.get("use-sigstore-attachments"))
    staging = settings.get("lookaside-staging") or settings.get("sigstore-staging")
    store = settings.get("lookaside") or settings.get("sigstore") or ""
    return bool(staging) or str(store).startswith("file://")
