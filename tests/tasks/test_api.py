"""buildlib.tasks.api under doit itself: examples/monorepo, its no-op run, a generated `files` source."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO, Built, new_cache, snapshot_store

from buildlib.fsutil import store_lock
from buildlib.tasks.api import distrokit_tasks, named_specs, output_files
from buildlib.tasks.identity import public_task_name
from buildlib.upkeep import cache

EXAMPLE = REPO / "examples" / "monorepo"


def copy_store(source: Path, dest: Path) -> Path:
    return snapshot_store(source, dest)


def run_doit(folder: Path, store: Path, *args: str) -> tuple[list[str], list[str]]:
    """doit's own report of one run in `folder`: the tasks it ran (`.  name`) and the up-to-date ones (`-- name`)."""
    env = {**os.environ, "DISTROKIT_CACHE": str(store)}
    done = subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=folder, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line[:3] + public_task_name(line[3:]) for line in done.stdout.splitlines()]  # without state ids
    return [line[3:] for line in lines if line.startswith(".  ")], [
        line[3:] for line in lines if line.startswith("-- ")
    ]


@pytest.fixture()
def monorepo(tmp_path: Path) -> Path:
    """examples/monorepo copied beside a link to components/ (its specs name ../../../components)."""
    folder = tmp_path / "examples" / "monorepo"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("out", "generated", ".doit.db*"))
    os.symlink(COMPONENTS, tmp_path / "components")
    return folder


def test_monorepo_example_builds_then_runs_nothing_then_only_the_changed_part(
    minimal_build: Built, monorepo: Path, tmp_path: Path
) -> None:
    store = copy_store(minimal_build.cache, tmp_path / "store")

    ran, _ = run_doit(monorepo, store)
    web, db = "os-output:web/kernel+initrd", "os-output:db/kernel+initrd"  # each format is its own task
    put = "os-output:web"  # puts web's staged files in place, after every output task of web
    assert {"motd", web, db, put, "os-usage:web", "os-usage:db", "checksums"} <= set(ran)
    assert ran.index("motd") < ran.index("os-part:web/files") < ran.index(web) < ran.index(put) < ran.index("checksums")
    assert (monorepo / "out" / "web-initrd.img").is_file() and (monorepo / "out" / "db-initrd.img").is_file()
    sums = (monorepo / "out" / "SHA256SUMS").read_text()
    assert "web-initrd.img" in sums and "db-kernel" in sums

    ran, up_to_date = run_doit(monorepo, store)
    assert ran == []
    assert web in up_to_date and "checksums" in up_to_date

    (monorepo / "motd.in").write_text("Changed on {host}.\n")
    ran, _ = run_doit(monorepo, store)
    assert sorted(ran) == sorted(["motd", "os-part:web/files", web, put, "os-usage:web", "checksums"])


def test_doit_driven_builds_write_usage_records_that_gc_keeps(
    minimal_build: Built, monorepo: Path, tmp_path: Path
) -> None:
    store = copy_store(minimal_build.cache, tmp_path / "store")
    before = set((store / "uses").glob("*.json"))  # the shared store may hold other specs named web
    run_doit(monorepo, store)
    (used,) = set((store / "uses").glob("web@*.json")) - before  # filed under the state id (name and spec file)
    record = json.loads(used.read_text())
    assert record["spec"] == "web" and record["segments"]
    assert any(path.endswith("os/web.yml") for path in record["spec_files"])

    cache.gc(store, None)
    for key in record["segments"]:
        assert list((store / "segments").glob(f"{key}*")), f"gc removed segment {key} of a doit-driven build"
    ran, _ = run_doit(monorepo, store)
    assert ran == []


def test_task_names_are_prefixed_and_dependencies_follow(minimal_build: Built, tmp_path: Path) -> None:
    spec = tmp_path / "a.yml"
    spec.write_text(
        f'kernel:\n  image: "@pkg:{COMPONENTS}/kernel"\ninit:\n  - "@pkg:{COMPONENTS}/init"\n'
        "files:\n  - path: etc/x\n    source: gen/x\n"
    )
    made = list(distrokit_tasks([spec], cache=minimal_build.cache, out_dir=tmp_path / "out", prefix="mono-"))
    dicts = [task for task in made if isinstance(task, dict)]
    assert {task["basename"] for task in dicts} == {
        "mono-component",
        "mono-image",
        "mono-part",
        "mono-output",
        "mono-usage",
    }
    for task in dicts:
        assert all(dep.startswith("mono-") for dep in task.get("task_dep", ())), task
    files_part = next(task for task in dicts if public_task_name(f"part:{task['name']}") == "part:a/files")
    assert "gen/x" in files_part["file_dep"], "a source not written yet is still a file_dep"
    outputs = [task for task in dicts if task["basename"] == "mono-output"]  # stages, boot files, formats, publish
    written = sorted(target for task in outputs for target in task.get("targets", ()) if "/out/" in target)
    assert written == sorted(output_files(tmp_path / "out", "a"))


def test_specs_with_one_base_name_need_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two specs are named 'a'"):
        named_specs([tmp_path / "x" / "a.yml", tmp_path / "y" / "a.yml"])
    assert named_specs({"one": ["x/a.yml"], "two": ["y/a.yml"]}) == {"one": [Path("x/a.yml")], "two": [Path("y/a.yml")]}


def test_a_list_of_specs_is_named_with_the_architecture_beyond_amd64() -> None:
    """As `distrokit build --arch arm64` names its outputs (minimal-arm64-kernel); a mapping's names stay."""
    assert named_specs(["x/web.yml"]) == {"web": [Path("x/web.yml")]}
    assert named_specs(["x/web.yml"], "arm64") == {"web-arm64": [Path("x/web.yml")]}
    assert named_specs({"web": ["x/web.yml"]}, "arm64") == {"web": [Path("x/web.yml")]}


def _doit(folder: Path, env: dict[str, str], *args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run([sys.executable, "-m", "doit", *args], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode in ok, done.stdout + done.stderr
    return done.stdout


def _layer_digests(folder: Path, env: dict[str, str], task: str) -> set[str]:
    """The layers of the images a task reads, from its file_dep (image records) as `doit info` shows it."""
    info = _doit(folder, env, "info", task, ok=(0, 1))  # 1: the task is not up to date
    info = info.split("file_dep", 1)[1].split("targets", 1)[0]
    records = [Path(line.strip()[2:]) for line in info.splitlines() if line.strip().startswith("- ")]
    assert records, info
    return {digest.split(":")[1] for path in records for digest, *_ in json.loads(path.read_text())["layers"]}


def test_one_part_runs_alone_and_indexes_only_its_own_layers(
    minimal_build: Built, monorepo: Path, tmp_path: Path
) -> None:
    """A part waits for its own images, not for every layer of every image: asked for alone (with no
    layer indexed yet), it indexes its images' layers itself and nothing else runs but what it needs."""
    store = copy_store(minimal_build.cache, tmp_path / "store")
    for made in ("layers", "segments"):  # no index, and no segment a part could take as it is (shared store)
        shutil.rmtree(store / made, ignore_errors=True)
    env = {**os.environ, "DISTROKIT_CACHE": str(store)}
    names = _doit(monorepo, env, "list", "--all", "-q").split()
    (init,) = [name for name in names if name.startswith("os-part:web@") and name.endswith("/init")]
    (kernel,) = [name for name in names if name.startswith("os-part:web@") and name.endswith("/kernel")]

    ran, _ = run_doit(monorepo, store, init)
    assert "os-part:web/init" in ran
    assert not [name for name in ran if name.startswith(("os-layer", "os-output", "os-part:db"))], ran
    indexed = {path.name.split(".")[0] for path in (store / "layers").glob("*.index")}
    assert _layer_digests(monorepo, env, init) == indexed
    assert not _layer_digests(monorepo, env, kernel) & indexed


def test_a_distrokit_command_beside_a_monorepo_doit_on_one_store(
    monorepo: Path, tmp_path: Path, debs_dir: Path
) -> None:
    """doit runs distrokit's tasks without the store's lock. A distrokit command on the same store that
    takes the lock meanwhile (a build of another spec, a pull) must leave the doit's scratch folders alone."""
    store = new_cache(tmp_path / "store", debs_dir)
    env = {**os.environ, "DISTROKIT_CACHE": str(store), "DISTROKIT_SCRATCH": "store"}
    command = [sys.executable, "-m", "doit"]
    doit = subprocess.Popen(command, cwd=monorepo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    # the kernel component's packages, unpacked in the store's tmp/ for a second or two
    while not (scratch := [path for path in (store / "tmp").glob(f"{doit.pid}.kernel-*") if path.is_dir()]):
        assert doit.poll() is None, doit.communicate()[0]
        assert time.monotonic() < deadline, "doit built no kernel component"
        time.sleep(0.005)
    with store_lock(store):  # as `distrokit build` of another spec takes it
        assert all(folder.is_dir() for folder in scratch)
    output, _ = doit.communicate(timeout=600)
    assert doit.returncode == 0, output
    assert (monorepo / "out" / "web-initrd.img").is_file() and (monorepo / "out" / "db-initrd.img").is_file()
