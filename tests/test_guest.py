"""The guest runtime, booted for real in QEMU (TCG): onboot containers in order, services, onshutdown
at power-off, ssh from the host through a published port, and a disk that keeps its data.

Four boots in all; each spec is built once into the shared store.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SPECS, Built, build

TEST_SPECS = Path(__file__).resolve().parent / "specs"
BOOT_TIMEOUT = 300


def distrokit(cache: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it."""
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload,no-any-return]


def boot(built: Built, *args: str) -> str:
    return boot_path(built, built.prefix, *args)


def boot_path(built: Built, path: Path, *args: str) -> str:
    """`distrokit run PATH` (an output prefix or a media file) to a clean power-off; the console."""
    done = distrokit(built.cache, "run", str(path), "--timeout", str(BOOT_TIMEOUT), *args, timeout=BOOT_TIMEOUT + 30)
    assert done.returncode == 0, f"distrokit run failed: {done.stderr}\n{done.stdout[-3000:]}"
    assert "guest powered off" in done.stderr
    return done.stdout


def in_order(text: str, *needles: str) -> None:
    position = 0
    for needle in needles:
        found = text.find(needle, position)
        assert found >= 0, f"{needle!r} missing (or out of order) in the console:\n{text[-4000:]}"
        position = found + len(needle)


@pytest.mark.boot
def test_onboot_in_order_services_and_onshutdown(shared_cache: Path, tmp_path: Path) -> None:
    built = build(TEST_SPECS / "containers.yml", shared_cache, tmp_path)
    console = boot(built)
    in_order(
        console,
        "onboot-1: first",
        "distrokit: onboot container fails failed",  # logged, and the boot goes on
        "onboot-2: vethc is here",  # runtime.json interfaces, inside a new network namespace
        "onboot-2: writable",  # a non-readonly container writes into its overlay
        "onboot-3: runtime.json applied",  # mkdir and bindNS of the one before
        "stopper: service says hello",  # a service's output, prefixed by its name
        "distrokit: system going down",  # the service ran poweroff
        "onshutdown: so long and thanks for all the fish",
        "logged: service says hello",  # the service's output is in /var/log/stopper.log too
        "reboot: Power down",
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ssh(key: Path, port: int, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    options = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
    options += ["-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "-i", str(key), "-p", str(port)]
    return subprocess.run(["ssh", *options, "root@127.0.0.1", command], capture_output=True, text=True, timeout=timeout)


@pytest.mark.boot
@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs openssh-client (scripts/setup.sh installs it)")
def test_ssh_into_sshd_yml(shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.setenv("HOME", str(home))  # sshd.yml's `files` takes ~/.ssh/id_ed25519.pub
    built = build(SPECS / "sshd.yml", shared_cache, tmp_path / "out")
    port = _free_port()
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(shared_cache), "run", str(built.prefix)]
    command += ["--publish", f"{port}:22", "--timeout", str(BOOT_TIMEOUT)]
    log = tmp_path / "console.log"
    with (
        open(log, "wb") as console,
        subprocess.Popen(
            command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT
        ) as guest,
    ):
        try:
            result = _wait_for_ssh(key, port, guest)
            assert result.returncode == 0, f"{result.stderr}\n{log.read_text(errors='replace')[-3000:]}"
            assert 'NAME="distrokit"' in result.stdout
            _ssh(key, port, "poweroff")
            assert guest.wait(timeout=120) == 0
        finally:
            if guest.poll() is None:
                guest.kill()
    in_order(log.read_text(errors="replace"), "sshd:", "distrokit: system going down", "guest powered off")


def _wait_for_ssh(key: Path, port: int, guest: subprocess.Popen[bytes]) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        result = _ssh(key, port, "cat /etc/os-release")
        if result.returncode == 0 or time.monotonic() > deadline or guest.poll() is not None:
            return result
        time.sleep(2)


@pytest.mark.boot
def test_a_persistent_disk_keeps_a_file_across_boots(shared_cache: Path, tmp_path: Path) -> None:
    built = build(TEST_SPECS / "disk.yml", shared_cache, tmp_path)
    disk = tmp_path / "data.qcow2"
    first = boot(built, "--disk", f"{disk},size=64M")
    assert disk.is_file()
    in_order(first, "format: /dev/vda is blank", "mount: /dev/vda on /var/lib", "persist: wrote the marker")
    second = boot(built, "--disk", f"{disk},size=64M", "--networking", "none")
    in_order(second, "format: /dev/vda is not blank", "persist: found written-on-first-boot")
