"""buildlib.tasks.shared: two stores sharing one loopback registry as a build cache; dead and corrupt caches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built, build, new_cache, snapshot_store
from registry import Registry, free_port
from signkit import gnupg_home, make_key, signed_by, write_policy, write_registries_d

from buildlib.cli import main
from buildlib.outputs.initrd import segment_path
from buildlib.store.transport import Network, RetryPolicy
from buildlib.tasks.shared import SharedCache

NETWORK = Network(retry=RetryPolicy(attempts=2, backoff=0.1))


def shared(cache_from: list[str] = [], cache_to: list[str] = []) -> SharedCache:  # noqa: B006 - never mutated
    cache = SharedCache.from_flags(cache_from, cache_to, NETWORK, env={})
    assert cache is not None
    return cache


def output_bytes(out: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(out.iterdir())}


def registry_blob(registry: Registry, digest: str) -> Path:
    hexpart = digest.partition(":")[2]
    return registry.root / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexpart[:2] / hexpart / "data"


def test_a_second_store_fetches_what_the_first_pushed(registry: Registry, tmp_path: Path, debs_dir: Path) -> None:
    repo = f"{registry.host}/build-cache-{tmp_path.name}"
    first = shared(cache_to=[repo])
    a = build(SPECS / "minimal.yml", new_cache(tmp_path / "a", debs_dir), tmp_path / "out-a", shared=first)
    assert first.warnings == []
    assert {"component:kernel", "component:init", "part:minimal/files", "part:minimal/init"} <= set(first.pushed)

    second = shared(cache_from=[repo])
    b = build(SPECS / "minimal.yml", tmp_path / "b", tmp_path / "out-b", shared=second)
    assert second.warnings == []
    fetched = set(b.report.fetched)
    assert fetched == {name for name in b.report.executed if name.startswith(("component:", "part:"))}
    assert {"component:kernel", "component:init", "part:minimal/files"} <= fetched
    ran_here = set(b.report.executed) - fetched
    assert ran_here and all(name.startswith(("image:", "layer:", "output:")) for name in ran_here)
    assert output_bytes(b.out_dir) == output_bytes(a.out_dir)

    # a corrupt artifact in the registry: rejected with a warning, built here, the same bytes
    pointer = b.state_dir / "files.segment"
    segment = segment_path(b.cache, pointer.read_text().strip())
    blob = registry_blob(registry, "sha256:" + hashlib.sha256(segment.read_bytes()).hexdigest())
    good = segment.read_bytes()
    blob.write_bytes(bytes(len(good)))
    segment.unlink()
    pointer.unlink()
    third = shared(cache_from=[repo])
    c = build(SPECS / "minimal.yml", b.cache, b.out_dir, shared=third)
    assert "part:minimal/files" in c.report.executed and "part:minimal/files" not in c.report.fetched
    assert any("rejected" in warning for warning in third.warnings), third.warnings
    assert segment.read_bytes() == good
    assert output_bytes(c.out_dir) == output_bytes(a.out_dir)


def test_a_dead_cache_registry_is_one_warning_and_a_local_build(
    minimal_build: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store"
    snapshot_store(minimal_build.cache, store)
    spec = tmp_path / "dead.yml"
    spec.write_text(
        f'kernel:\n  image: "@pkg:{COMPONENTS}/kernel"\ninit:\n  - "@pkg:{COMPONENTS}/init"\n'
        f"files:\n  - path: etc/dead\n    contents: {tmp_path.name}\n"
    )
    dead = f"127.0.0.1:{free_port()}/cache"
    args = ["--cache", str(store), "build", str(spec), "--dir", str(tmp_path / "out"), "-q"]
    code = main([*args, "--cache-from", dead, "--cache-to", dead])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "out" / "dead-initrd.img").is_file()
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "unreachable" in warnings[0], err


def test_build_signs_what_cache_to_pushes_and_a_signed_by_policy_fetches_it(
    minimal_build: Built, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = make_key(tmp_path / "gnupg", "cache")
    registries_d = write_registries_d(tmp_path / "registries.d", registry.host, tmp_path / "signatures")
    repo = f"{registry.host}/signed-cache-{tmp_path.name}"
    policy = write_policy(tmp_path / "policy.json", {repo: [signed_by(key)]})
    spec = tmp_path / "signed.yml"
    spec.write_text(
        f'kernel:\n  image: "@pkg:{COMPONENTS}/kernel"\ninit:\n  - "@pkg:{COMPONENTS}/init"\n'
        f"files:\n  - path: etc/signed\n    contents: {tmp_path.name}\n"
    )

    def build_in(name: str, *flags: str) -> tuple[int, str]:
        store = snapshot_store(minimal_build.cache, tmp_path / name)
        args = ["--cache", str(store), "--registries-d", str(registries_d), *flags[:2], "build", str(spec)]
        code = main([*args, "--dir", str(tmp_path / f"out-{name}"), *flags[2:]])
        return code, capsys.readouterr().err

    with gnupg_home(tmp_path / "gnupg"):
        refused = ["--cache", str(tmp_path / "empty"), "--registries-d", str(registries_d), "build", str(spec)]
        assert main([*refused, "--sign-by", key.fingerprint]) == 2  # nothing to push: nothing to sign
        assert "give --cache-to REPOSITORY" in capsys.readouterr().err
        assert main([*refused, "--cache-to", repo, "--sign-by", "0" * 40]) == 2  # no such key: before any build
        err = capsys.readouterr().err
        assert "cannot sign with the GPG key" in err and not (tmp_path / "empty" / "segments").exists(), err
        code, err = build_in("pushing", "--policy", str(policy), "--cache-to", repo, "--sign-by", key.fingerprint)
        assert code == 0 and "warning" not in err, err
    signatures = list((tmp_path / "signatures").rglob("signature-*"))
    assert signatures, "no signature was written for what --cache-to pushed"
    code, err = build_in("fetching", "--policy", str(policy), "--cache-from", repo)
    assert code == 0 and "warning" not in err, err
    assert "fetched from a shared cache" in err, err
    assert output_bytes(tmp_path / "out-fetching") == output_bytes(tmp_path / "out-pushing")
