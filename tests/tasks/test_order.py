"""buildlib.tasks.order: DISTROKIT_SHUFFLE_SEED shuffles the order doit sees the tasks in (a test aid);
unset, doit gets the declared order. A plan that leans on its declared order fails under some seed;
a sound one builds the same bytes under every seed."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from cachetruth import base_spec, copy_store, write_world
from conftest import COMPONENTS
from doit.task import Task
from registry import Registry

from buildlib import tasks
from buildlib.errors import BadInput, BuildError
from buildlib.store.images import Store
from buildlib.tasks.order import SHUFFLE_ENV, shuffle_seed, shuffled_tasks


def test_the_seed_comes_from_the_environment() -> None:
    assert shuffle_seed({}) is None
    assert shuffle_seed({SHUFFLE_ENV: ""}) is None
    assert shuffle_seed({SHUFFLE_ENV: "42"}) == 42
    with pytest.raises(BadInput, match=f"{SHUFFLE_ENV}='x'"):
        shuffle_seed({SHUFFLE_ENV: "x"})


def numbered_tasks() -> list[Task]:
    return [Task(f"t{n}", None, task_dep=[f"d{n}-{m}" for m in range(5)]) for n in range(20)]


def test_unset_the_task_list_goes_to_doit_untouched() -> None:
    declared = numbered_tasks()
    assert shuffled_tasks(declared, None) is declared
    assert [task.task_dep for task in declared] == [task.task_dep for task in numbered_tasks()]


def test_a_seed_gives_one_order_and_another_seed_another() -> None:
    def order(seed: int) -> list[tuple[str, list[str]]]:
        return [(task.name, task.task_dep) for task in shuffled_tasks(numbered_tasks(), seed)]

    declared = [(task.name, task.task_dep) for task in numbered_tasks()]
    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1) != declared
    assert sorted(order(1)) != sorted(declared)  # the task dependencies are shuffled too
    assert sorted((name, sorted(deps)) for name, deps in order(1)) == sorted(declared)


def leaning_plan(store: Path) -> tasks.Plan:
    """Two tasks: `reader` reads what `writer` writes without depending on it; in declared order the
    writer happens to run first."""
    written = store / "build" / "written"
    plan = tasks.Plan(Store(store))

    def write() -> None:
        written.parent.mkdir(parents=True, exist_ok=True)
        written.write_text("written\n")

    plan.tasks = [
        {"basename": "output", "name": "writer", "actions": [plan.sink.guard(write)], "targets": [str(written)]},
        {"basename": "output", "name": "reader", "actions": [plan.sink.guard(written.read_text)]},
    ]
    return plan


def test_a_plan_leaning_on_its_declared_order_fails_under_some_seed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SHUFFLE_ENV, raising=False)
    tasks.run_plan(leaning_plan(tmp_path / "declared"), outstream=io.StringIO())
    failed = []
    for seed in range(8):
        monkeypatch.setenv(SHUFFLE_ENV, str(seed))
        try:
            tasks.run_plan(leaning_plan(tmp_path / f"seed-{seed}"), outstream=io.StringIO())
        except BuildError:
            failed.append(seed)
    assert failed, "no seed ran the reader before the writer"
    monkeypatch.setenv(SHUFFLE_ENV, str(failed[0]))  # a seed names its order: the failure comes again
    with pytest.raises(BuildError):
        tasks.run_plan(leaning_plan(tmp_path / "again"), outstream=io.StringIO())


@pytest.mark.registry
def test_a_sound_plan_builds_the_same_bytes_in_every_order(
    truth_images: Path, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each build from a clean store at the same paths, so only the seed differs. (The order doit
    runs the tasks in is not a test here: even unset it varies, as doit's file dependencies are sets.)"""
    spec = write_world(base_spec(), registry.host, tmp_path / "project")
    store, out = tmp_path / "store", tmp_path / "out"
    runs: list[tuple[tuple[str, ...], dict[str, str]]] = []
    for seed in ("", "1", "2"):
        monkeypatch.setenv(SHUFFLE_ENV, seed)
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        options = tasks.BuildOptions(cache=copy_store(truth_images, store), out_dir=out, name="truth")
        report = tasks.build_spec([spec], options, COMPONENTS, outstream=io.StringIO())
        hashes = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(out.iterdir())}
        runs.append((report.executed, hashes))
    (declared, first), (one, second), (two, third) = runs
    assert first == second == third
    assert sorted(declared) == sorted(one) == sorted(two)
