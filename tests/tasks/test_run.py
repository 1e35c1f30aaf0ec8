"""buildlib.tasks.run: a build killed at any moment leaves a sound store; builds share one store safely."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SPECS, Built, new_cache

from buildlib.outputs.compress import decompress
from buildlib.rootfs import layers
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store


def build_command(cache: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "buildlib.cli",
        "--cache",
        str(cache),
        "build",
        str(SPECS / "minimal.yml"),
        "--dir",
        str(out),
        "-q",
    ]


def start_build(cache: Path, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        build_command(cache, out),
        cwd=SPECS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def assert_store_is_sound(cache: Path) -> None:
    """Every entry is complete and verified, or absent."""
    store = Store(cache)
    for blob in (cache / "blobs" / "sha256").glob("*"):
        if blob.name.startswith("."):
            continue  # a temp file a killed write left; never read as an entry
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == "sha256:" + blob.name, blob
    for ref_file in (cache / "refs").rglob("*"):
        if ref_file.is_file() and not ref_file.name.startswith("."):
            digest = ref_file.read_text().strip()
            parts = ref_file.relative_to(cache / "refs").parts
            ref = ImageRef.parse(f"{parts[0]}/{'/'.join(parts[1:-1])}:{parts[-1]}")
            assert store.lookup(ref) == digest, f"{ref} points at an incomplete image"
    for index in (cache / "layers").glob("*.index"):
        lines = index.read_text().splitlines()
        header = json.loads(lines[0])
        assert header["version"] == layers.INDEX_VERSION
        for line in lines[1:]:
            json.loads(line)
    for segment in (cache / "segments").glob("*.cpio.z"):
        data = decompress(segment.read_bytes())
        assert data.rstrip(b"\0").endswith(b"TRAILER!!!\0") or b"TRAILER!!!" in data[-512:], segment


@pytest.mark.slow
def test_killed_builds_then_finished_give_clean_bytes(minimal_build: Built, tmp_path: Path, debs_dir: Path) -> None:
    seed = int(os.environ.get("DISTROKIT_KILL_SEED", time.time()))
    rng = random.Random(seed)
    cache = new_cache(tmp_path / "cache", debs_dir)
    out = tmp_path / "out"
    for _attempt in range(6):
        build = start_build(cache, out)
        time.sleep(rng.uniform(0.3, 12.0))
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
        assert_store_is_sound(cache)
        assert not out.exists() or all(not p.name.endswith(".tmp") for p in out.iterdir()), f"seed {seed}"
    finished = subprocess.run(build_command(cache, out), cwd=SPECS.parent, capture_output=True)
    assert finished.returncode == 0, finished.stderr.decode()
    assert_store_is_sound(cache)
    for name in ("minimal-kernel", "minimal-initrd.img", "minimal-cmdline"):
        assert (out / name).read_bytes() == (minimal_build.out_dir / name).read_bytes(), f"{name}, seed {seed}"


@pytest.mark.slow
def test_two_concurrent_builds_share_one_store(minimal_build: Built, tmp_path: Path, debs_dir: Path) -> None:
    cache = new_cache(tmp_path / "cache", debs_dir)
    first, second = start_build(cache, tmp_path / "a"), start_build(cache, tmp_path / "b")
    for build in (first, second):
        _, err = build.communicate(timeout=600)
        assert build.returncode == 0, err.decode()
    for name in ("minimal-kernel", "minimal-initrd.img", "minimal-cmdline"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() == (minimal_build.out_dir / name).read_bytes()
    assert_store_is_sound(cache)


def test_parallel_actions_leave_the_real_std_streams(tmp_path: Path) -> None:
    """doit swaps sys.stdout/sys.stderr around each action; two overlapping actions on two threads
    restore each other's capture buffers, so without care the CLI's later messages go nowhere."""
    from buildlib import tasks

    def slow(seconds: float) -> None:
        time.sleep(seconds)

    plan = tasks.Plan(Store(tmp_path / "cache"))
    for name, seconds in (("first", 0.2), ("second", 0.4)):
        plan.tasks.append({"basename": "sleep", "name": name, "actions": [(slow, [seconds])], "verbosity": 0})
    stdout, stderr = sys.stdout, sys.stderr
    report = tasks.run_plan(plan, ["-n", "2", "-P", "thread"])
    assert set(report.executed) == {"sleep:first", "sleep:second"}
    assert sys.stdout is stdout and sys.stderr is stderr
