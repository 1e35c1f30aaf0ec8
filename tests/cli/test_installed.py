"""distrokit installed from its wheel into a fresh virtualenv, used in a folder outside this
repository as a new user would: `distrokit init`, `build`, `run` to a shell on the console and a clean
power-off, and `doit`, with nothing but the built-in components."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from bootkit import Terminal
from conftest import REPO, new_cache

BOOT_TIMEOUT = 400


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with distrokit installed from a wheel built from this checkout (not editable)."""
    root = tmp_path_factory.mktemp("installed")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(root / "wheel"), str(REPO)], root, env)
    (wheel,) = (root / "wheel").glob("distrokit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "buildlib/builtin_components/kernel/component.yml" in names  # the recipes travel with the wheel
    assert "buildlib/builtin_components/README.md" in names
    _run([sys.executable, "-m", "venv", str(root / "venv")], root, env)
    _run([str(root / "venv" / "bin" / "pip"), "install", "-q", str(wheel)], root, env)
    return root / "venv"


@pytest.mark.boot
@pytest.mark.slow
def test_init_build_run_and_doit_from_an_installed_wheel_outside_the_repository(
    installed: Path, tmp_path: Path, debs_dir: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DISTROKIT_COMPONENTS")}
    env["DISTROKIT_CACHE"] = str(new_cache(tmp_path / "cache", debs_dir))  # shared .debs: no download again
    distrokit = str(installed / "bin" / "distrokit")
    where = _run([str(installed / "bin" / "python"), "-c", "import buildlib; print(buildlib.__file__)"], tmp_path, env)
    assert str(installed) in where and str(REPO) not in where  # the installed copy, not this checkout

    _run([distrokit, "init", "myos"], tmp_path, env)
    project = tmp_path / "myos"
    assert "built-in component kernel" in _run([distrokit, "validate", "myos.yml"], project, env)
    built = _run([distrokit, "build", "myos.yml"], project, env)
    assert "component:kernel" in built  # built here from the built-in recipe, not pulled from a registry
    assert {"myos-kernel", "myos-initrd.img", "myos-cmdline"} <= {p.name for p in project.iterdir()}

    terminal = Terminal([distrokit, "run", "myos", "--networking", "none"], cwd=project, env=env)
    try:
        terminal.expect(b"hello from myos", BOOT_TIMEOUT)  # the spec's files: boot hook ran
        terminal.expect(b"# ", 120)  # the getty service's root shell (INSECURE=true)
        time.sleep(1)
        terminal.type(b"\npoweroff\n")
        assert terminal.process.wait(timeout=120) == 0
        terminal.expect(b"guest ended after", 10)
    finally:
        terminal.close()

    doit = str(installed / "bin" / "doit")
    _run([doit], project, env)
    assert (project / "out" / "myos-initrd.img").read_bytes() == (project / "myos-initrd.img").read_bytes()
    again = _run([doit], project, env)
    assert "\n. " not in "\n" + again, again  # a second doit runs no task
