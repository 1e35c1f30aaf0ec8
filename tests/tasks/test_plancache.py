"""buildlib.tasks.plancache under doit itself: a monorepo's unchanged specs are not planned again, and
a cached plan is never served once anything planning read has changed (cache truth: after each change
the outputs are the bytes a clean store builds)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO, Built, build, snapshot_store
from doit.dependency import Dependency, SqliteDB

from buildlib.tasks.api import read_saved_states_at_once
from buildlib.tasks.identity import public_task_name
from buildlib.tasks.keys import XXHashChecker

DODO = """\
import os
from buildlib.outputs.compress import Compression
from buildlib.tasks.api import distrokit_tasks, monorepo_doit_config

DOIT_CONFIG = monorepo_doit_config(dep_file=".doit.db")
SPECS = sorted(p for p in os.listdir("specs") if p.endswith(".yml"))


def task_os():
    yield from distrokit_tasks(
        ["specs/" + p for p in SPECS], cache=os.environ["DISTROKIT_CACHE"], out_dir="out", prefix="os-",
        compression=Compression.parse(os.environ.get("TEST_COMPRESSION", "zstd")),
        components=os.environ["TEST_COMPONENTS"],
    )
"""
# which specs a new process takes from the plan cache (their tasks' actions plan them only when run)
SERVED = """\
import os, sys
from buildlib.outputs.compress import Compression
from buildlib.tasks import plancache
from buildlib.tasks.api import distrokit_tasks
names = set()
for task in distrokit_tasks(sys.argv[1:], cache=os.environ["DISTROKIT_CACHE"], out_dir="out", prefix="os-",
                            compression=Compression.parse(os.environ.get("TEST_COMPRESSION", "zstd")),
                            components=os.environ["TEST_COMPONENTS"]):
    if isinstance(task, dict) and isinstance((task.get("actions") or [None])[0], plancache.RealAction):
        names.add(task["name"].split("@")[0])
print(" ".join(sorted(names)))
"""
SPEC = """\
kernel:
  image: "@pkg:{components}/kernel"
  cmdline: "console=ttyS0"
init:
  - "@pkg:{components}/init"
files:
  - path: etc/motd
    contents: "{motd}\\n"
"""


class Monorepo:
    """A folder with dodo.py and specs/, its own store (a copy of the shared one), run by real processes."""

    def __init__(self, folder: Path, store: Path, components: Path) -> None:
        self.folder, self.store, self.components = folder, store, components
        self.env = {**os.environ, "DISTROKIT_CACHE": str(store), "TEST_COMPONENTS": str(components)}
        self.env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests")])
        self.env.pop("DISTROKIT_AUDIT", None)

    def spec(self, name: str) -> Path:
        return self.folder / "specs" / f"{name}.yml"

    def write(self, name: str, motd: str, components: Path | None = None) -> None:
        self.spec(name).write_text(SPEC.format(components=components or self.components, motd=motd))

    def doit(self, **env: str) -> list[str]:
        """The tasks one `doit` run ran (public names)."""
        done = subprocess.run(
            [sys.executable, "-m", "doit"],
            cwd=self.folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return [public_task_name(line[3:]) for line in done.stdout.splitlines() if line.startswith(".  ")]

    def served(self, **env: str) -> set[str]:
        """The specs a new process takes from the plan cache."""
        specs = sorted(f"specs/{path.name}" for path in (self.folder / "specs").glob("*.yml"))
        done = subprocess.run(
            [sys.executable, "-c", SERVED, *specs],
            cwd=self.folder,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        return set(done.stdout.split())


@pytest.fixture()
def monorepo(minimal_build: Built, tmp_path: Path) -> Monorepo:
    folder = tmp_path / "repo"
    (folder / "specs").mkdir(parents=True)
    (folder / "dodo.py").write_text(DODO)
    store = snapshot_store(minimal_build.cache, tmp_path / "store", copy=os.link)  # entries are replaced, never edited
    repo = Monorepo(folder, store, COMPONENTS)
    for name in ("a", "b", "c"):
        repo.write(name, f"hello from {name}")
    return repo


def assert_as_clean(repo: Monorepo, name: str, minimal_build: Built, tmp_path: Path) -> None:
    """The spec's outputs are the bytes a clean store builds from the spec as it is now."""
    clean_store = snapshot_store(minimal_build.cache, tmp_path / f"clean-{name}", copy=os.link)
    cwd = os.getcwd()
    os.chdir(repo.folder)  # state ids and relative paths as doit saw them
    try:
        clean = build(repo.spec(name), clean_store, tmp_path / f"clean-out-{name}", name=name)
    finally:
        os.chdir(cwd)
    for suffix in ("-initrd.img", "-kernel", "-cmdline"):
        ours = (repo.folder / "out" / f"{name}{suffix}").read_bytes()
        assert ours == (clean.out_dir / f"{name}{suffix}").read_bytes(), f"{name}{suffix} differs from a clean build"


def test_unchanged_specs_are_served_from_the_plan_cache_and_nothing_runs(monorepo: Monorepo) -> None:
    first = monorepo.doit()
    assert {"os-output:a", "os-output:b", "os-output:c"} <= set(first)
    assert monorepo.served() == {"a", "b", "c"}
    database = monorepo.folder / ".doit.db"
    saved = (database.stat().st_mtime_ns, database.read_bytes())
    assert monorepo.doit() == []
    # nothing to do, nothing written: not even the family groups' records (sqlite counts every commit)
    assert (database.stat().st_mtime_ns, database.read_bytes()) == saved
    for state in (monorepo.store / "build").glob("[abc]@*"):
        entry = json.loads((state / "plan.json").read_text())
        assert {task["basename"] for task in entry["tasks"]} == {"part", "output"}


def test_a_changed_spec_is_planned_again_even_with_its_size_and_mtime_kept(
    monorepo: Monorepo, minimal_build: Built, tmp_path: Path
) -> None:
    monorepo.doit()
    spec = monorepo.spec("a")
    before = spec.stat()
    monorepo.write("a", "HELLO FROM A")  # the same size
    os.utime(spec, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the same mtime: its bytes decide
    assert spec.stat().st_size == before.st_size
    assert monorepo.served() == {"b", "c"}
    ran = monorepo.doit()
    assert "os-part:a/files" in ran and "os-output:a" in ran
    assert not [task for task in ran if "b/" in task or "c/" in task or task.endswith((":b", ":c"))]
    assert_as_clean(monorepo, "a", minimal_build, tmp_path)
    assert monorepo.served() == {"a", "b", "c"}  # planned again, and kept
    assert monorepo.doit() == []


def test_a_touched_spec_with_the_same_bytes_is_still_served(monorepo: Monorepo) -> None:
    monorepo.doit()
    spec = monorepo.spec("b")
    os.utime(spec, ns=(spec.stat().st_atime_ns, spec.stat().st_mtime_ns - 10**10))  # a checkout, a touch
    assert monorepo.served() == {"a", "b", "c"}
    assert monorepo.doit() == []


def test_other_options_or_environment_plan_every_spec_again(
    monorepo: Monorepo, minimal_build: Built, tmp_path: Path
) -> None:
    monorepo.doit()
    assert monorepo.served(TEST_COMPRESSION="gzip") == set()
    assert monorepo.served(SOURCE_DATE_EPOCH="1700000000") == set()
    assert monorepo.served(DISTROKIT_AUDIT="1") == set()  # audit mode recomputes everything: plans for real
    ran = monorepo.doit(TEST_COMPRESSION="gzip")
    assert "os-part:a/files" in ran and "os-output:c" in ran
    assert monorepo.doit(TEST_COMPRESSION="gzip") == []


def test_a_changed_component_folder_plans_its_specs_again(monorepo: Monorepo, tmp_path: Path) -> None:
    own = tmp_path / "own-components"
    own.mkdir()
    os.symlink(COMPONENTS / "kernel", own / "kernel")  # the same recipes, through another folder
    init = shutil.copytree(COMPONENTS / "init", own / "init")  # a copy: the same content, the same image
    for name in ("a", "b", "c"):  # a plan takes each component from one folder
        monorepo.write(name, f"hello from {name}", components=own)
    monorepo.doit()
    time.sleep(2)  # a component changed a moment ago is not trusted by its stats: c is saved once it is older
    monorepo.doit()
    assert monorepo.served() == {"a", "b", "c"}
    (init / "notes.txt").write_text("a new file in the component folder\n")  # a new image tag, too
    assert monorepo.served() == set()


def test_a_spec_with_a_source_file_is_planned_every_time(monorepo: Monorepo) -> None:
    (monorepo.folder / "motd.txt").write_text("from a file\n")
    monorepo.spec("b").write_text(
        monorepo.spec("b").read_text().replace('contents: "hello from b\\n"', "source: motd.txt")
    )
    monorepo.doit()
    assert monorepo.served() == {"a", "c"}
    assert monorepo.doit() == []
    (monorepo.folder / "motd.txt").write_text("from a changed file\n")
    assert "os-part:b/files" in monorepo.doit()


def test_saved_states_are_read_in_one_query_and_are_those_doit_reads(monorepo: Monorepo) -> None:
    monorepo.doit()
    database = str(monorepo.folder / ".doit.db")
    task_ids = [row[0] for row in sqlite3.connect(database).execute("select task_id from doit")]
    assert len(task_ids) > 20
    as_doit_reads = Dependency(SqliteDB, database, checker_cls=XXHashChecker)
    expected = {task_id: as_doit_reads.backend.get(task_id, "_values_:") for task_id in task_ids}
    at_once = Dependency(SqliteDB, database, checker_cls=XXHashChecker)
    statements: list[str] = []
    at_once.backend._conn.set_trace_callback(statements.append)
    read_saved_states_at_once(at_once)
    assert {task_id: at_once.backend.get(task_id, "_values_:") for task_id in task_ids} == expected
    assert any(expected.values()) and len(statements) == 1, statements
    assert at_once.backend.get("os-no-such-task", "_values_:") is None  # unknown tasks, as doit answers
