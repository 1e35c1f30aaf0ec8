"""Signatures from the command line, as a user runs it: `pkg push --sign-by`, `pull` and `build` under
`--policy`, against a real docker-registry on loopback and a GPG key made in a temporary GNUPGHOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from bootkit import distrokit
from registry import Registry
from signkit import GpgKey, gnupg_home, make_key, signed_by, write_policy, write_registries_d

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    home = tmp_path_factory.mktemp("keys") / "gnupg"
    made = make_key(home, "release")
    with gnupg_home(home):
        yield made


def component(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "component.yml").write_text(f"files:\n  - path: etc/{name}\n    contents: {name}\n")
    return folder


def pushed(stderr: str) -> str:
    """The `DEST DIGEST` line `pkg push` ends with: DEST."""
    return stderr.strip().splitlines()[-1].split()[0]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("distrokit: error:")]


@pytest.fixture(scope="module")
def components(key: GpgKey, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Two components pushed under `signing/`: `signed` with --sign-by, `plain` without."""
    root = tmp_path_factory.mktemp("signing")
    registries_d = write_registries_d(root / "registries.d", registry.host, root / "signatures")
    cache, to = root / "cache", f"{registry.host}/signing"
    signed = distrokit(
        cache,
        "--registries-d",
        str(registries_d),
        "pkg",
        "push",
        str(component(root / "signed", "signed")),
        "--to",
        to,
        "--sign-by",
        key.fingerprint,
    )
    assert signed.returncode == 0, signed.stderr
    plain = distrokit(cache, "pkg", "push", str(component(root / "plain", "plain")), "--to", to)
    assert plain.returncode == 0, plain.stderr
    policy = write_policy(root / "policy.json", {f"{registry.host}/signing": [signed_by(key)]})
    return {
        "signed": pushed(signed.stderr),
        "plain": pushed(plain.stderr),
        "policy": policy,
        "registries_d": registries_d,
    }


def test_a_component_signed_at_pkg_push_passes_the_policy_naming_its_key(components: dict[str, object], tmp_path: Path):
    trust = ["--policy", str(components["policy"]), "--registries-d", str(components["registries_d"])]
    done = distrokit(tmp_path / "cache", *trust, "pull", str(components["signed"]))
    assert done.returncode == 0, done.stderr
    refused = distrokit(tmp_path / "cache", "pull", str(components["plain"]), *trust)  # flags after the command too
    assert refused.returncode != 0
    (line,) = error_lines(refused.stderr)
    assert f"image {components['plain']} refused by the policy {components['policy']}" in line
    assert "rule signedBy GPGKeys" in line and "no signature exists" in line
    assert refused.stderr.count("\n") <= 2  # a progress line and the error, no traceback
    listed = distrokit(tmp_path / "cache", "cache", "ls")
    assert "plain" not in listed.stdout and "signed" in listed.stdout


def test_a_build_whose_image_is_refused_fails_in_one_line(components: dict[str, object], tmp_path: Path):
    spec = tmp_path / "refused.yml"
    build = ["build", "-q", "-f", "tar", "--dir", str(tmp_path / "out"), str(spec)]
    spec.write_text(f"init:\n  - {components['plain']}\n")
    env_policy = {
        "DISTROKIT_POLICY": str(components["policy"]),
        "DISTROKIT_REGISTRIES_D": str(components["registries_d"]),
    }
    done = distrokit(tmp_path / "cache", *build, env={**os.environ, **env_policy})
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr  # -q: the one line and nothing else
    (line,) = error_lines(done.stderr)
    assert f"image {components['plain']} refused by the policy" in line and "signedBy" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    blobs = tmp_path / "cache" / "blobs" / "sha256"
    assert not blobs.is_dir() or not any(blobs.iterdir())  # nothing of the refused image stayed
    spec.write_text(f"init:\n  - {components['signed']}\n")
    trust = ["--policy", str(components["policy"]), "--registries-d", str(components["registries_d"])]
    done = distrokit(tmp_path / "cache", *trust, *build)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "refused.tar").is_file()


def test_a_missing_policy_is_bad_input(tmp_path: Path):
    done = distrokit(tmp_path / "cache", "--policy", str(tmp_path / "nope.json"), "pull", "127.0.0.1:1/x:1")
    assert done.returncode == 2
    (line,) = error_lines(done.stderr)
    assert f"policy {tmp_path / 'nope.json'}: cannot read it" in line
