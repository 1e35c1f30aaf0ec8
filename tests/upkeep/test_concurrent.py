"""The store under concurrent use, with real processes on one real store: `cache gc` during a build, two
builds of one spec at once (one --dir and two), a build killed while another waits on the store lock.
Each ends correct or with one clear line, and `distrokit cache check` finds no broken entry afterwards."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COMPONENTS, new_cache

from buildlib.fsutil import LOCK_NAME, SCRATCH_ENV, memory_scratch

# The init component (built from its .deb in each fresh store: a few seconds of work under the lock),
# two containers and a file: enough tasks for a second process to arrive while the first works.
SPEC = """\
init:
  - "@pkg:../components/init"
onboot:
  - name: hello
    image: "@pkg:../components/init"
    command: ["/bin/echo", "hello"]
files:
  - path: etc/motd
    contents: "concurrent\\n"
"""


def spec_file(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    os.symlink(COMPONENTS, tmp_path / "components")
    spec = folder / "busy.yml"
    spec.write_text(SPEC)
    return spec


def distrokit(cache: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def build(cache: Path, spec: Path, out: Path) -> subprocess.Popen[str]:
    return distrokit(cache, "build", "-q", "-f", "tar", str(spec), "--dir", str(out))


def finished(process: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str]:
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err


def lock_held(cache: Path) -> bool:
    """Whether some process holds the store lock now (asked of the kernel, as the lock itself is)."""
    path = cache / LOCK_NAME
    if not path.is_file():
        return False
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def wait_for_lock(cache: Path, process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not lock_held(cache):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the build never took the store lock"
        time.sleep(0.02)


def check_clean(cache: Path) -> None:
    process = distrokit(cache, "cache", "check")
    code, err = finished(process)
    assert code == 0, err


def reference_tar(tmp_path: Path, spec: Path, debs: Path) -> bytes:
    """The tar a build alone, in a store of its own, writes."""
    out = tmp_path / "alone"
    code, err = finished(build(new_cache(tmp_path / "alone-cache", debs), spec, out))
    assert code == 0, err
    return (out / "busy.tar").read_bytes()


def test_gc_during_a_build_waits_and_keeps_what_the_build_used(tmp_path: Path, debs_dir: Path) -> None:
    spec, cache = spec_file(tmp_path), new_cache(tmp_path / "cache", debs_dir)
    first = build(cache, spec, tmp_path / "out")
    wait_for_lock(cache, first)
    gc = distrokit(cache, "cache", "gc")
    assert finished(first) == (0, "")
    code, err = finished(gc)
    assert code == 0, err
    check_clean(cache)
    again = distrokit(cache, "build", "--json", "-f", "tar", str(spec), "--dir", str(tmp_path / "out"))
    code, err = finished(again)
    assert code == 0, err
    assert (tmp_path / "out" / "busy.tar").read_bytes() == reference_tar(tmp_path, spec, debs_dir)


def test_two_builds_of_one_spec_at_once_into_one_dir_and_into_two(tmp_path: Path, debs_dir: Path) -> None:
    spec, cache = spec_file(tmp_path), new_cache(tmp_path / "cache", debs_dir)
    expected = reference_tar(tmp_path, spec, debs_dir)
    same = [build(cache, spec, tmp_path / "same") for _ in range(2)]
    other = build(cache, spec, tmp_path / "other")
    for process in [*same, other]:
        assert finished(process) == (0, "")
    assert (tmp_path / "same" / "busy.tar").read_bytes() == expected
    assert (tmp_path / "other" / "busy.tar").read_bytes() == expected
    assert sorted(p.name for p in (tmp_path / "same").iterdir()) == ["busy.tar"]  # no temporary file left
    check_clean(cache)


def test_a_build_killed_while_another_waits_on_the_store_lock(tmp_path: Path, debs_dir: Path) -> None:
    spec, cache = spec_file(tmp_path), new_cache(tmp_path / "cache", debs_dir)
    expected = reference_tar(tmp_path, spec, debs_dir)
    doomed = build(cache, spec, tmp_path / "out")
    while True:  # frozen mid-build while it holds the lock (it takes it twice: to plan, then to build)
        wait_for_lock(cache, doomed)
        os.kill(doomed.pid, signal.SIGSTOP)
        if lock_held(cache):
            break
        os.kill(doomed.pid, signal.SIGCONT)
    waiting = build(cache, spec, tmp_path / "out")
    deadline = time.monotonic() + 120
    while not waits_on_a_lock(waiting.pid):  # planned, and blocked on the lock the first one holds
        assert waiting.poll() is None, waiting.communicate()
        assert time.monotonic() < deadline, "the second build never waited on the store lock"
        time.sleep(0.02)
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.communicate()
    assert finished(waiting) == (0, "")
    assert (tmp_path / "out" / "busy.tar").read_bytes() == expected
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["busy.tar"]
    check_clean(cache)


def waits_on_a_lock(pid: int) -> bool:
    """Whether process `pid` is blocked in flock: the kernel lists each waiter in /proc/locks as
    `N: -> FLOCK ADVISORY WRITE PID ...`."""
    waiters = (line.split() for line in Path("/proc/locks").read_text().splitlines() if " -> " in line)
    return any(fields[5] == str(pid) for fields in waiters)


def store_files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.name != LOCK_NAME and "debs" not in p.parts)


def test_a_build_writes_nothing_in_the_store_while_another_holds_its_lock(tmp_path: Path, debs_dir: Path) -> None:
    # gc removes every `.*.tmp` it finds, trusting that nothing writes while it holds the lock: a build
    # that planned (and pinned its .debs) meanwhile would lose its half-written file under it.
    spec, cache = spec_file(tmp_path), new_cache(tmp_path / "cache", debs_dir)
    cache.joinpath(LOCK_NAME).touch()
    with open(cache / LOCK_NAME, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # as `cache gc` holds it
        waiting = build(cache, spec, tmp_path / "out")
        deadline = time.monotonic() + 120
        while not waits_on_a_lock(waiting.pid) and not store_files(cache):
            assert waiting.poll() is None and time.monotonic() < deadline, waiting.communicate()
            time.sleep(0.05)
        written = store_files(cache)
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    assert written == []
    assert finished(waiting) == (0, "")
    check_clean(cache)


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGHUP])
def test_a_build_ended_by_a_signal_cleans_up_as_it_goes(
    tmp_path: Path, debs_dir: Path, monkeypatch: pytest.MonkeyPatch, number: signal.Signals
) -> None:
    """`kill`, `timeout`, a cancelled CI job: the build stops as Ctrl-C stops it, and leaves nothing behind
    (SIGKILL leaves its scratch until the store's lock is next taken: see the test above)."""
    spec, out = spec_file(tmp_path), tmp_path / "out"
    code, err = finished(build(new_cache(tmp_path / "first", debs_dir), spec, out))
    assert code == 0, err
    before = (out / "busy.tar").read_bytes()
    spec.write_text(SPEC.replace("concurrent", "changed"))
    monkeypatch.setenv(SCRATCH_ENV, str(tmp_path / "scratch"))
    cache = new_cache(tmp_path / "cache", debs_dir)
    doomed = build(cache, spec, out)
    scratch = memory_scratch(cache)
    assert scratch is not None
    deadline = time.monotonic() + 120
    while not (scratch.is_dir() and any(scratch.iterdir())):  # a component's packages are being unpacked
        assert doomed.poll() is None, doomed.communicate()
        assert time.monotonic() < deadline, "no component was built"
        time.sleep(0.01)
    doomed.send_signal(number)
    code, err = finished(doomed)
    assert code == 128 + number and f"distrokit: terminated ({number.name})" in err, err
    assert not scratch.exists()
    assert list((cache / "tmp").iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["busy.tar"] and (out / "busy.tar").read_bytes() == before
    check_clean(cache)
