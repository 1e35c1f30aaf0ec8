"""A hermetic DAG (issue 24): no task reads a file it does not declare, so the order doit runs
tasks in (`-j 2` threads) cannot change whether a build succeeds."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built

from buildlib import tasks
from buildlib.errors import AuditError
from buildlib.store.images import Store

ROOT_FORMATS = ("kernel+erofs", "kernel+squashfs", "kernel+iso")


@pytest.mark.parametrize("fmt", ROOT_FORMATS)
def test_root_formats_build_with_fresh_names_under_two_jobs(minimal_build: Built, tmp_path: Path, fmt: str) -> None:
    """The boot-initrd stage read every part's pointer but declared only the boot parts': with fresh
    names at -j 2 it ran before the files part about half the time and failed. A fresh name is a fresh
    state folder, so every run starts with no pointer written; eight runs miss the race 1 time in 256."""
    for attempt in range(8):
        name = f"fresh-{fmt.replace('+', '-')}-{attempt}"
        options = tasks.BuildOptions(cache=minimal_build.cache, out_dir=tmp_path, name=name, formats=(fmt,))
        report = tasks.build_spec([SPECS / "minimal.yml"], options, COMPONENTS, jobs=2, outstream=io.StringIO())
        assert f"output:{name}/{fmt}" in report.executed
        assert (tmp_path / f"{name}-boot-initrd.img").is_file()


def reader_plan(store: Path, reads: Path, **declared: list[str]) -> tasks.Plan:
    """A plan of one task that reads `reads` (a file in the store), declaring what `declared` says."""
    plan = tasks.Plan(Store(store), audit=True)
    plan.tasks = [
        {
            "basename": "output",
            "name": "reader",
            "actions": [plan.sink.guard(reads.read_bytes)],
            "targets": [str(store / "build" / "reader.out")],
            **declared,
        }
    ]
    return plan


def undeclared_input(tmp_path: Path) -> tuple[Path, Path]:
    store = tmp_path / "store"
    source = store / "build" / "other" / "written-by-another-task"
    source.parent.mkdir(parents=True)
    source.write_text("a pointer some other task writes\n")
    return store, source


def test_audit_fails_an_undeclared_read_naming_the_task_and_file(tmp_path: Path) -> None:
    store, source = undeclared_input(tmp_path)
    with pytest.raises(AuditError) as caught:
        tasks.run_plan(reader_plan(store, source), outstream=io.StringIO())
    assert "output:reader" in str(caught.value)
    assert str(source) in str(caught.value)


def test_audit_passes_the_same_read_once_declared(tmp_path: Path) -> None:
    store, source = undeclared_input(tmp_path)
    report = tasks.run_plan(reader_plan(store, source, file_dep=[str(source)]), outstream=io.StringIO())
    assert report.executed == ("output:reader",)


def test_audit_sees_the_paths_handed_to_a_tool(tmp_path: Path) -> None:
    store, source = undeclared_input(tmp_path)
    plan = reader_plan(store, source)
    plan.tasks[0]["actions"] = [plan.sink.guard(lambda: subprocess.run(["cat", str(source)], check=True))]
    with pytest.raises(AuditError, match="written-by-another-task"):
        tasks.run_plan(plan, ["-n", "2", "-P", "thread"], io.StringIO())


def test_without_audit_nothing_is_watched(tmp_path: Path) -> None:
    store, source = undeclared_input(tmp_path)
    plan = reader_plan(store, source)
    plan.audit = False
    assert tasks.run_plan(plan, outstream=io.StringIO()).executed == ("output:reader",)
