"""A hermetic DAG (issue 24): no task reads a file it does not declare, so the order doit runs
tasks in (`-j 2` threads) cannot change whether a build succeeds."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built

from buildlib import tasks

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
