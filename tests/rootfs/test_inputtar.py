"""buildlib.rootfs.inputtar: `build --input-tar FILE`, images taken from a previous build's tar.

Real images in a real loopback registry; the registry is stopped before the build that must not
pull, so a pull would fail the build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, Built, build
from layerkit import M, store_layer
from registry import running_registry

from buildlib.debian.recipes import PACKAGES_LABEL
from buildlib.spec.refs import ImageRef
from buildlib.store import pulls
from buildlib.store.images import Store
from buildlib.store.transport import Network, RetryPolicy

NET = Network(retry=RetryPolicy(attempts=1, timeout=20, backoff=0.01))

SPEC = """
onboot:
  - name: first
    image: {host}/lk/app:v1
    command: ["/bin/app"]
services:
  - name: again
    image: {host}/lk/app:v1
  - name: other
    image: {host}/lk/{other}:v1
volumes:
  - name: tools
    image: {host}/lk/app:v1
files:
  - path: etc/hello
    contents: "hello"
"""


def _push(source: Store, host: str, name: str) -> None:
    layer = store_layer(
        source,
        [
            M("bin", "d", mode=0o755),
            M("bin/app", data=f"#!/bin/sh\necho {name}\n".encode(), mode=0o755),
            M("bin/app-link", "h", link="bin/app"),
            M("etc", "d", mode=0o755),
            M(f"etc/{name}.conf", data=name.encode() * 100),
        ],
        compress=True,
    )
    labels = {PACKAGES_LABEL: json.dumps([[f"{name}-pkg", "1.0", "ab" * 32, "amd64"]])}
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": labels, "Entrypoint": ["/bin/app"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }
    ref = ImageRef.parse(f"{host}/lk/{name}:v1")
    source.write_image(ref, config, [(layer.digest, layer.size, layer.media_type)])
    pulls.push(source, ref, str(ref), network=NET)


@dataclass(frozen=True)
class World:
    host: str
    first: Built  # spec `app` built normally: the input tar
    other: Built  # spec `other` (a second image the first tar lacks) built normally
    other_from_tar: Built  # spec `other` built in a fresh store with the first tar as input
    other_store: Path


def _spec(folder: Path, host: str, other: str) -> Path:
    path = folder / f"{other}.yml"
    path.write_text(SPEC.format(host=host, other=other))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("input-tar")
    with running_registry(root / "registry") as registry:
        host = registry.host
        source = Store(root / "source")
        for name in ("app", "base", "extra"):
            _push(source, host, name)
        first = build(_spec(root, host, "base"), root / "s1", root / "out1", formats=("tar",), network=NET)
        other_spec = _spec(root, host, "extra")
        other = build(other_spec, root / "s2", root / "out2", formats=("tar",), network=NET)
        other_from_tar = build(
            other_spec,
            root / "s3",
            root / "out3",
            formats=("tar",),
            network=NET,
            input_tar=first.prefix.with_suffix(".tar"),
        )
    return World(host, first, other, other_from_tar, root / "s3")


def test_a_tar_built_from_the_input_tar_with_no_registry_equals_a_normal_build(world: World, tmp_path: Path) -> None:
    """The registry is gone: every image of the spec comes from the tar, and the bytes are the same."""
    spec = _spec(tmp_path, world.host, "base")
    again = build(
        spec,
        tmp_path / "fresh",
        tmp_path / "out",
        formats=("tar",),
        network=NET,
        input_tar=world.first.prefix.with_suffix(".tar"),
    )
    assert again.prefix.with_suffix(".tar").read_bytes() == world.first.prefix.with_suffix(".tar").read_bytes()
    fresh = Store(tmp_path / "fresh")
    for name in ("app", "base"):
        assert fresh.lookup(ImageRef.parse(f"{world.host}/lk/{name}:v1")) is None, "nothing was pulled"


def test_an_image_the_input_tar_lacks_is_pulled_and_the_rest_taken_from_it(world: World) -> None:
    store = Store(world.other_store)
    assert store.lookup(ImageRef.parse(f"{world.host}/lk/extra:v1")) is not None, "the missing image was pulled"
    assert store.lookup(ImageRef.parse(f"{world.host}/lk/app:v1")) is None, "the tar's image was not"
    tar = world.other_from_tar.prefix.with_suffix(".tar").read_bytes()
    assert tar == world.other.prefix.with_suffix(".tar").read_bytes()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "buildlib.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_input_tar_cannot_be_the_output(world: World, tmp_path: Path) -> None:
    spec = _spec(tmp_path, world.host, "base")
    given = tmp_path / "root.tar"
    given.write_bytes(world.first.prefix.with_suffix(".tar").read_bytes())
    before = given.read_bytes()
    for flags in (["-o", str(given)], ["-f", "tar", "--dir", str(tmp_path), "--name", "root"]):
        result = _cli(
            "build", "--cache", str(tmp_path / "c"), "--input-tar", str(given), *flags, str(spec), cwd=tmp_path
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--input-tar" in lines[0] and "is also the output file" in lines[0], lines
    assert given.read_bytes() == before, "nothing lost"
    result = _cli("build", "--cache", str(tmp_path / "c"), "--input-tar", str(given), "--pull", str(spec), cwd=tmp_path)
    assert result.returncode == 2 and "--input-tar and --pull cannot be used together" in result.stderr
