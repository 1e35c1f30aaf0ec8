"""buildlib.tasks.keys: a file dependency's change is seen by its content, even within one mtime tick."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS, Built

from buildlib.tasks import BuildOptions
from buildlib.tasks.keys import RACY_NS, XXHashChecker


def rewrite_within_the_tick(path: Path, data: bytes) -> None:
    """An in-place edit the clock did not see: same size, same mtime (as within one timestamp tick)."""
    st = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_a_rewrite_within_the_tick_of_the_saved_state_is_seen(tmp_path: Path) -> None:
    source = tmp_path / "key"
    source.write_bytes(b"secret-1\n")
    checker = XXHashChecker()
    state = checker.get_state(str(source), None)
    rewrite_within_the_tick(source, b"secret-2\n")
    assert checker.check_modified(str(source), source.stat(), state)


def test_an_old_file_is_trusted_by_its_mtime_and_size(tmp_path: Path) -> None:
    """No hashing when the state was saved well after the file last changed (the common, fast case)."""
    source = tmp_path / "old"
    source.write_bytes(b"steady\n")
    old = time.time_ns() - 10 * RACY_NS
    os.utime(source, ns=(old, old))
    checker = XXHashChecker()
    state = checker.get_state(str(source), None)
    rewrite_within_the_tick(source, b"STEADY\n")  # content changed behind the clock's back, long after
    assert not checker.check_modified(str(source), source.stat(), state)


def test_a_racy_state_is_refreshed_once_the_file_is_old(tmp_path: Path) -> None:
    source = tmp_path / "key"
    source.write_bytes(b"one\n")
    checker = XXHashChecker()
    racy = checker.get_state(str(source), None)
    assert checker.get_state(str(source), racy) is None  # still within the tick: nothing better to save
    old = time.time_ns() - 10 * RACY_NS
    os.utime(source, ns=(old, old))
    refreshed = checker.get_state(str(source), racy)
    assert refreshed is not None and refreshed[2] == racy[2]


def test_a_component_reruns_when_a_host_tool_it_runs_changes(
    minimal_build: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's busybox writes the kernel image's modules.dep: its version is part of the key."""
    from buildlib.debian import builds as component_builds
    from buildlib.tasks import plan_build
    from buildlib.tasks.explain import RUN, explain

    options = BuildOptions(cache=minimal_build.cache, out_dir=minimal_build.out_dir, name="minimal")
    before = {item.task: item.status for item in explain(plan_build([SPECS / "minimal.yml"], options, COMPONENTS))}
    assert before["component:kernel"] != RUN
    newer = {**component_builds.host_tool_versions(), "busybox": "BusyBox v9.99.0 multi-call binary."}
    monkeypatch.setattr(component_builds, "host_tool_versions", lambda root=None: newer)
    after = {item.task: item.status for item in explain(plan_build([SPECS / "minimal.yml"], options, COMPONENTS))}
    assert after["component:kernel"] == RUN
