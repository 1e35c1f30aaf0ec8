"""buildlib.debian.apt: apt's answers for any architecture, its binary caches kept in distrokit's state
folder (Debian's container images switch apt's own off), the same answers as apt without them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from buildlib.arches import host_arch
from buildlib.debian import apt, archive, recipes


def closure_without_caches(names: list[str], state: Path) -> list[str]:
    """apt's dependency closure for an empty system as apt gives it with no binary cache: the oracle."""
    (state / "archives" / "partial").mkdir(parents=True)
    (state / "status").touch()
    options = [f"-oDir::State::status={state}/status", f"-oDir::Cache::archives={state}/archives"]
    options += ["-oDir::Cache::pkgcache=", "-oDir::Cache::srcpkgcache=", "-oDebug::NoLocking=1"]
    options += ["-oAPT::Install-Recommends=false", "-oAPT::Install-Suggests=false"]
    command = ["apt-get", *options, "install", "--print-uris", "-qq", *names]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return sorted(line.split()[1].split("_")[0] for line in output.splitlines() if line.startswith("'"))


def caches(state: Path) -> dict[str, int]:
    return {path.relative_to(state).as_posix(): path.stat().st_mtime_ns for path in state.rglob("*.bin")}


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "apt-state"
    monkeypatch.setenv("DISTROKIT_APT_STATE", str(folder))
    return folder


def test_apt_answers_from_caches_in_the_state_folder_as_without_them(tmp_path: Path, state: Path) -> None:
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "component.yml").write_text("name: t\npackages: [htop]\n")
    recipe = recipes.load_recipe(tmp_path / "recipe")
    first = archive.resolve_packages(recipe)
    assert sorted(package.name for package in first) == closure_without_caches(["htop"], tmp_path / "oracle")
    made = caches(state)
    # one apt run answers a plain recipe (its resolver names each .deb's SHA256): the bare system's cache,
    # and the source cache it shares with the host's lists
    assert sorted(made) == ["host/bare/pkgcache.bin", "host/cache/srcpkgcache.bin"]
    assert archive.resolve_packages(recipe) == first
    assert caches(state) == made  # read again, not written again


def test_without_a_writable_state_folder_apt_still_answers(tmp_path: Path, state: Path) -> None:
    state.write_text("a file where the state folder would be")
    names = sorted(request.split("=")[0] for request in archive.dependency_closure(["htop"], "htop"))
    assert names == closure_without_caches(["htop"], tmp_path / "oracle")


def test_update_leaves_the_host_s_own_lists_to_the_host(
    tmp_path: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`pkg build --update` for the host's architecture runs no `apt-get update` (its lists are the
    system's), though apt's options for it now name our caches: an apt-get first on PATH says if it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "ran"}\n')
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert apt.apt_options(host_arch())  # the caches' options: not empty, yet no update
    apt.refresh(host_arch())
    assert not (tmp_path / "ran").exists()


def test_a_plain_recipe_is_pinned_by_one_apt_run_as_by_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apt's resolver names each .deb of the closure with its size and SHA256 (ForceHash): the pins are
    what `apt-get download --print-uris` of the closure gives, without that second apt run."""
    real = shutil.which("apt-get")
    assert real is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$1" >> {tmp_path / "ran"}\nexec {real} "$@"\n')
    (bin_dir / "apt-get").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "component.yml").write_text("name: t\npackages: [htop, busybox-static]\n")
    pinned = archive.resolve_packages(recipes.load_recipe(tmp_path / "recipe"))
    assert len((tmp_path / "ran").read_text().splitlines()) == 1
    by_two = archive.print_uris(archive.dependency_closure(["htop", "busybox-static"], "htop"), "htop")
    assert pinned == by_two and {"htop", "busybox-static", "libc6"} <= {package.name for package in pinned}
    assert all(len(package.sha256) == 64 and package.size > 0 for package in pinned)
