"""Shared fixtures: one store and one build of specs/minimal.yml for the whole session.

Building the kernel component is the slowest step (~10 s), so every test that needs built
artifacts shares these instead of building its own.

Under pytest-xdist (`-n 2`, scripts/test.sh) the session builds are made once per run, not once per
worker: `once_per_run` builds them in a folder all workers share, under a file lock, and the workers
that come later read what the first one built. A test that writes the shared store itself takes the
store's lock (`store_lock`), as every distrokit writer does.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pickle
import shutil
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from registry import Registry, running_registry

from buildlib import tasks
from buildlib.fsutil import store_lock
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, the modules that hold boots or other slow tests go first, each in its own order: the
    workers start the long tests early and end on short ones, instead of one ending alone on a long boot.
    A run without xdist keeps pytest's order."""
    if not hasattr(config, "workerinput"):
        return
    slow = {item.path for item in items if item.get_closest_marker("boot") or item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: the order within a module stays


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


T = TypeVar("T")


def worker_id(request: pytest.FixtureRequest) -> str:
    """This process's xdist worker ("gw0", "gw1", ...), or "master" when the run is not distributed."""
    workerinput = getattr(request.config, "workerinput", None)
    return "master" if workerinput is None else str(workerinput["workerid"])


def once_per_run(request: pytest.FixtureRequest, name: str, make: Callable[[Path], T]) -> T:
    """`make(folder)` run once for the whole test run, its value shared by every xdist worker.

    Without xdist this is `make` in a fresh temp folder. Under xdist the folder is `name` in the run's
    temp root (the parent of every worker's own), made under an exclusive lock on `name.lock`: the
    first worker builds it and pickles the value to `name.done`; the others wait on the lock, then
    read that. A build that fails leaves `name.failed` with its error, and every later user fails with
    it too instead of using a half-written folder.
    """
    factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
    if worker_id(request) == "master":
        return make(factory.mktemp(name))
    run_root = factory.getbasetemp().parent
    folder, done, failed = (run_root / f"{name}{suffix}" for suffix in ("", ".done", ".failed"))
    with open(run_root / f"{name}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if failed.exists():
            raise RuntimeError(f"{name}: its shared build failed in another worker:\n{failed.read_text()}")
        if done.exists():
            value: T = pickle.loads(done.read_bytes())
            return value
        shutil.rmtree(folder, ignore_errors=True)  # nothing to reuse: no build got as far as its marker
        folder.mkdir()
        try:
            value = make(folder)
        except BaseException:
            failed.write_text(traceback.format_exc())
            raise
        staged = done.with_suffix(".part")
        staged.write_bytes(pickle.dumps(value))
        staged.replace(done)
        return value


def snapshot_store(cache: Path, target: Path, copy: Callable[[str, str], object] = shutil.copy2) -> Path:
    """A copy of a store that other tests (and xdist workers) may be writing: taken under its lock, so no
    file is copied half-written or vanishes mid-copy; its scratch folder and lock file are left out."""
    with store_lock(cache):
        shutil.copytree(cache, target, symlinks=True, copy_function=copy, ignore=shutil.ignore_patterns("tmp", "lock"))
    return target


@pytest.fixture(scope="session")
def debs_dir(request: pytest.FixtureRequest) -> Path:
    """One download folder for .deb files, shared by every store the tests make (and every worker)."""
    return once_per_run(request, "debs", lambda folder: folder)


def new_cache(root: Path, debs: Path) -> Path:
    """A fresh store whose .deb folder is shared, so a clean build does not download again."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "debs").symlink_to(debs, target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def shared_cache(request: pytest.FixtureRequest, debs_dir: Path) -> Path:
    return once_per_run(request, "store", lambda folder: new_cache(folder / "cache", debs_dir))


@pytest.fixture(scope="session")
def minimal_build(request: pytest.FixtureRequest, shared_cache: Path) -> Built:
    """specs/minimal.yml built once, into the shared store."""
    return once_per_run(request, "minimal", lambda out: build(SPECS / "minimal.yml", shared_cache, out))


# Every output format, in one build of tests/specs/media.yml: formats whose files share a name
# (tar/docker NAME.tar, kernel+iso/iso-bios NAME.iso, vhd/dynamic-vhd NAME.vhd) go to a second name
# in the same doit run, which reuses every part.
MEDIA_SPEC = REPO / "tests" / "specs" / "media.yml"
MEDIA_ALTERNATES = ("iso-bios", "docker", "dynamic-vhd")
MEDIA_SIZE = 128 << 20  # small disks keep the suite quick; the default 1024M is tested apart


def media_formats() -> tuple[tuple[str, ...], tuple[str, ...]]:
    from buildlib.outputs import FORMAT_HOMES

    return tuple(n for n in sorted(FORMAT_HOMES) if n not in MEDIA_ALTERNATES), MEDIA_ALTERNATES


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
def media_build(request: pytest.FixtureRequest, shared_cache: Path) -> tuple[Built, Built]:
    """Every output format of tests/specs/media.yml, built once into the shared store."""
    return once_per_run(request, "media", lambda out: build_media(shared_cache, out))


@pytest.fixture(scope="session")
def sshd_build(request: pytest.FixtureRequest, shared_cache: Path) -> Built:
    """specs/sshd.yml (getty, dhcpcd, sshd, metadata) built once: the console and instance tests boot it."""
    return once_per_run(request, "sshd", lambda out: build(SPECS / "sshd.yml", shared_cache, out))


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
    """One docker-registry on a free loopback port for the whole session; stopped at the end. Under xdist
    each worker has its own (tests push into it), on its own port."""
    with running_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="session")
def truth_images(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cache-truth world's images (tests/cachetruth.py), pulled from the loopback registry into a
    store that holds nothing else: a clean store for those tests is a hard-linked copy of it. One per
    xdist worker: the images are named by that worker's registry (host and port)."""
    from cachetruth import pull_images, push_images

    from buildlib.store.images import Store
    from buildlib.store.transport import Network

    source = Store(tmp_path_factory.mktemp("truth-source"))
    push_images(source, registry.host, Network())
    pulled = tmp_path_factory.mktemp("truth-pulled") / "store"
    pull_images(Store(pulled), registry.host, Network())
    return pulled


@contextlib.contextmanager
def mounted_tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at `where` (made here) with mount `options`; the test skips where it cannot mount
    one (that needs root and CAP_SYS_ADMIN; CI runs as root)."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` now (Linux lists each thread's children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in map(int, (task / "children").read_text().split()):
                found |= {child, *descendants(child)}
    return found


def process_running(pid: int) -> bool:
    """Whether process `pid` has not ended (a zombie has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
