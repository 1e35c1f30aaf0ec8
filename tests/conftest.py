"""Shared fixtures: one store and one build of specs/minimal.yml for the whole session.

Building the kernel component is the slowest step (~10 s), so every test that needs built
artifacts shares these instead of building its own.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry import Registry, running_registry

from buildlib import tasks

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
COMPONENTS = REPO / "components"


@dataclass(frozen=True)
class Built:
    cache: Path
    out_dir: Path
    name: str
    report: tasks.BuildReport
    specs: tuple[Path, ...] = ()

    @property
    def prefix(self) -> Path:
        return self.out_dir / self.name

    @property
    def state(self) -> str:
        """The build's state id: its folder under build/ and its usage record's name."""
        return tasks.spec_state_id(self.name, [str(p) for p in self.specs], self.cache)

    @property
    def state_dir(self) -> Path:
        return self.cache / "build" / self.state


def build(spec: Path | list[Path], cache: Path, out_dir: Path, name: str | None = None, **kwargs: object) -> Built:
    specs = spec if isinstance(spec, list) else [spec]
    options = tasks.BuildOptions(cache=cache, out_dir=out_dir, name=name or specs[0].stem, **kwargs)  # type: ignore[arg-type]
    report = tasks.build_spec(specs, options, COMPONENTS, outstream=io.StringIO())
    return Built(cache, out_dir, options.name, report, tuple(specs))


@pytest.fixture(scope="session")
def debs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One download folder for .deb files, shared by every store the tests make."""
    return tmp_path_factory.mktemp("debs")


def new_cache(root: Path, debs: Path) -> Path:
    """A fresh store whose .deb folder is shared, so a clean build does not download again."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "debs").symlink_to(debs, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory, debs_dir: Path) -> Path:
    return new_cache(tmp_path_factory.mktemp("store") / "cache", debs_dir)


@pytest.fixture(scope="session")
def minimal_build(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """specs/minimal.yml built once, into the shared store."""
    return build(SPECS / "minimal.yml", shared_cache, tmp_path_factory.mktemp("out"))


@pytest.fixture(scope="session")
def sshd_build(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """specs/sshd.yml (getty, dhcpcd, sshd, metadata) built once: the console and instance tests boot it."""
    return build(SPECS / "sshd.yml", shared_cache, tmp_path_factory.mktemp("out"))


@pytest.fixture()
def spec_copy(tmp_path: Path) -> Path:
    """A copy of specs/minimal.yml beside a link to components/, for tests that edit a spec."""
    spec = tmp_path / "specs" / "minimal.yml"
    spec.parent.mkdir()
    shutil.copy(SPECS / "minimal.yml", spec)
    os.symlink(COMPONENTS, tmp_path / "components")
    return spec


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One docker-registry on a free loopback port for the whole session; stopped at the end."""
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def truth_images(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache-truth world's images (tests/cachetruth.py), pulled from the loopback registry into a
    store that holds nothing else: a clean store for those tests is a hard-linked copy of it."""
    from cachetruth import pull_images, push_images

    from buildlib.images import Store
    from buildlib.transport import Network

    source = Store(tmp_path_factory.mktemp("truth-source"))
    push_images(source, registry.host, Network())
    pulled = tmp_path_factory.mktemp("truth-pulled") / "store"
    pull_images(Store(pulled), registry.host, Network())
    return pulled
