"""Shared fixtures: one store and one build of specs/minimal.yml for the whole session.

Building the kernel component is the slowest step (~10 s), so every test that needs built
artifacts shares these instead of building its own.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from registry import Registry, running_registry

from buildlib import tasks
from buildlib.store.images import Store

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
COMPONENTS = REPO / "components"


def doit(project: Path, cache: Path, *args: str) -> str:
    env = dict(os.environ, DISTROKIT_CACHE=str(cache), PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def dodo_project(tmp_path: Path) -> Path:
    """A project like this repository, with one spec (its own name, so it shares no task with others)."""
    root = tmp_path / "project"
    (root / "specs").mkdir(parents=True)
    shutil.copy(REPO / "dodo.py", root / "dodo.py")
    shutil.copy(SPECS / "minimal.yml", root / "specs" / "doitspec.yml")
    (root / "components").symlink_to(COMPONENTS, target_is_directory=True)
    return root


@dataclass(frozen=True)
class Built:
    cache: Path
    out_dir: Path
    name: str
    report: tasks.BuildReport
    specs: tuple[Path, ...] = ()
    # The build's state id (its folder under build/, its usage record's name), taken when it was built:
    # it names the spec files relative to the folder the build ran in.
    built_state: str = ""

    @property
    def prefix(self) -> Path:
        return self.out_dir / self.name

    @property
    def state(self) -> str:
        return self.built_state or tasks.spec_state_id(self.name, [str(p) for p in self.specs], self.cache)

    @property
    def state_dir(self) -> Path:
        return self.cache / "build" / self.state


def build(spec: Path | list[Path], cache: Path, out_dir: Path, name: str | None = None, **kwargs: object) -> Built:
    specs = spec if isinstance(spec, list) else [spec]
    options = tasks.BuildOptions(cache=cache, out_dir=out_dir, name=name or specs[0].stem, **kwargs)  # type: ignore[arg-type]
    report = tasks.build_spec(specs, options, COMPONENTS, outstream=io.StringIO())
    state = tasks.spec_state_id(options.name, [str(p) for p in specs], cache)
    return Built(cache, out_dir, options.name, report, tuple(specs), state)


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


# Every output format, in one build of tests/specs/media.yml: formats whose files share a name
# (tar/docker NAME.tar, kernel+iso/iso-bios NAME.iso, vhd/dynamic-vhd NAME.vhd) go to a second name
# in the same doit run, which reuses every part.
MEDIA_SPEC = REPO / "tests" / "specs" / "media.yml"
MEDIA_ALTERNATES = ("iso-bios", "docker", "dynamic-vhd")
MEDIA_SIZE = 128 << 20  # small disks keep the suite quick; the default 1024M is tested apart


def media_formats() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from buildlib.outputs import FORMATS

    return tuple(n for n in sorted(FORMATS) if n not in MEDIA_ALTERNATES), MEDIA_ALTERNATES


def build_media(cache: Path, out_dir: Path) -> tuple[Built, Built]:
    from buildlib.spec.model import load_spec

    main, alternates = media_formats()
    plan = tasks.Plan(Store(cache))
    spec = load_spec([MEDIA_SPEC], resolve_pkg=plan.resolver)
    built = []
    for name, formats in (("media", main), ("media-alt", alternates)):
        options = tasks.BuildOptions(cache=cache, out_dir=out_dir, name=name, formats=formats, size=MEDIA_SIZE)
        plan.add_spec(spec, options, COMPONENTS)
        built.append((options.name, formats))
    report = tasks.run_plan(plan, ["-n", "2", "-P", "thread"], io.StringIO())
    one, two = (Built(cache, out_dir, name, report) for name, _ in built)
    return one, two


@pytest.fixture(scope="session")
def media_build(shared_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Built, Built]:
    """Every output format of tests/specs/media.yml, built once into the shared store."""
    return build_media(shared_cache, tmp_path_factory.mktemp("media"))


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

    from buildlib.store.images import Store
    from buildlib.store.transport import Network

    source = Store(tmp_path_factory.mktemp("truth-source"))
    push_images(source, registry.host, Network())
    pulled = tmp_path_factory.mktemp("truth-pulled") / "store"
    pull_images(Store(pulled), registry.host, Network())
    return pulled
