"""The guest runtime, booted for real in QEMU (TCG): onboot containers in order, services, onshutdown
at power-off, ssh from the host through a published port, and a disk that keeps its data.

Five boots in all; each spec is built once into the shared store. The ssh boots are one instance of
specs/sshd.yml whose key comes as metadata (--data-file): detached, stopped with --stop, and started
again from its state folder alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from bootkit import BOOT_TIMEOUT, Terminal, boot_path, distrokit
from conftest import SPECS, Built, build

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"


def boot(built: Built, *args: str) -> str:
    return boot_path(built, built.prefix, *args)


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
        "onboot-2: vethc and veth0 are here",  # runtime.json interfaces, inside a new network namespace
        "onboot-2: writable",  # a non-readonly container writes into its overlay
        "onboot-3: runtime.json applied",  # mkdir and bindNS of the one before
        "root: peers veth1 and vethh are here",  # the peers keep their names in the root namespace
        "stopper: shares the onboot namespace",  # net: a path bound by bindNS
        "stopper: service says hello",  # a service's output, prefixed by its name
        "distrokit: system going down",  # the service ran poweroff
        "onshutdown: so long and thanks for all the fish",
        "logged: service says hello",  # the service's output is in /var/log/stopper.out.log too (stdout)
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
def test_detached_sshd_stops_and_starts_again_as_it_was(sshd_build: Built, tmp_path: Path) -> None:
    """specs/sshd.yml bakes no key: the instance's own, in LinuxKit's JSON, comes in with --data-file.
    One instance, booted twice: detached with a port, data and a disk; listed by `ps`; its console
    attached and detached; its port refused to a second instance; stopped; then `run --state DIR`
    alone brings it back with the same key, port and disk."""
    key, other = tmp_path / "id_ed25519", tmp_path / "other"
    for path in (key, other):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    meta = tmp_path / "meta.json"
    authorized = {"perm": "0600", "content": key.with_suffix(".pub").read_text()}
    meta.write_text(
        json.dumps({"hostname": {"content": "instance-one"}, "ssh": {"entries": {"authorized_keys": authorized}}})
    )
    state, port = tmp_path / "state", _free_port()
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))  # this test's own roster of instances
    started = distrokit(
        sshd_build.cache, "run", str(sshd_build.prefix), "--detached", "--state", str(state),
        "--publish", f"{port}:22", "--data-file", str(meta), "--disk", "size=64M", timeout=120, env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    assert "--stop" in started.stderr and (state / "qemu.pid").is_file()
    try:
        _first_run_checks(key, other, port, state)
        _listed_attached_and_port_refused(sshd_build, state, port, env)
    finally:
        stopped = distrokit(sshd_build.cache, "run", "--state", str(state), "--stop", timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    assert "shut down" in stopped.stderr  # by the guest's own shutdown, not QEMU's quit
    assert not (state / "qemu.pid").exists()
    in_order(
        (state / "console.log").read_text(errors="replace"),
        "metadata: userdata from CDROM /dev/sr0",
        "metadata: hostname set to instance-one",
        "sshd:",
        "attached-42",
        "distrokit: system going down",
    )
    _started_again_by_its_state_folder(sshd_build, key, port, state, env)


def _first_run_checks(key: Path, other: Path, port: int, state: Path) -> None:
    result = _wait_for_ssh(key, port, lambda: (state / "qemu.pid").is_file())
    console = (state / "console.log").read_text(errors="replace")
    assert result.returncode == 0, f"{result.stderr}\n{console[-3000:]}"
    assert 'NAME="distrokit"' in result.stdout
    assert "instance-one" in _ssh(key, port, "hostname").stdout  # the hostname entry
    modes = _ssh(key, port, "stat -c %a /run/config/ssh/authorized_keys").stdout
    assert modes.strip() == "600"
    refused = _ssh(other, port, "true")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    wrote = _ssh(key, port, f"printf {DISK_MARK} | dd of=/dev/vda conv=fsync")  # the --disk, raw
    assert wrote.returncode == 0, wrote.stderr


DISK_MARK = "kept-across-restart"


def _listed_attached_and_port_refused(built: Built, state: Path, port: int, env: dict[str, str]) -> None:
    listed = distrokit(built.cache, "ps", env=env)
    assert listed.returncode == 0, listed.stderr
    pid = (state / "qemu.pid").read_text().strip()
    assert f"{state}\trunning\t{pid}\t{built.prefix}\t{port}:22" in listed.stdout.splitlines()
    command = [sys.executable, "-m", "buildlib.cli", "console", str(state)]
    terminal = Terminal(command, env=dict(env, COLUMNS="400"))  # no wrapped lines to look for
    try:
        terminal.expect(b"Ctrl-A X detaches", timeout=30)
        terminal.type(b"\recho attached-$((6*7))\r")
        terminal.expect(b"attached-42", timeout=60)  # the guest's shell answered through the socket
        terminal.type(b"\x01x")
        terminal.expect(b"detached; the instance runs on", timeout=30)
        assert terminal.process.wait(timeout=30) == 0
    finally:
        terminal.close()
    assert (state / "qemu.pid").read_text().strip() == pid  # detaching left it running
    second = distrokit(
        built.cache, "run", str(built.prefix), "--detached", "--state", str(state.parent / "second"),
        "--publish", f"{port}:22", timeout=60, env=env,
    )  # fmt: skip
    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"distrokit: error: --publish: port {port}/tcp on 127.0.0.1 is in use by the instance in {state} "
        f"(QEMU pid {pid}); stop it with --stop or publish another"
    ]


def _started_again_by_its_state_folder(built: Built, key: Path, port: int, state: Path, env: dict[str, str]) -> None:
    """`run --state DIR` alone, in the foreground: the same data ISO, port and disk as the first run."""
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(built.cache), "run", "--state", str(state)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as again:
        try:
            result = _wait_for_ssh(key, port, lambda: again.poll() is None)
            assert result.returncode == 0, f"{result.stderr}\n{(state / 'console.log').read_text()[-3000:]}"
            read = _ssh(key, port, f"dd if=/dev/vda bs={len(DISK_MARK)} count=1 2>/dev/null")
            assert read.stdout == DISK_MARK, read.stderr
        finally:
            stopped = distrokit(built.cache, "run", "--state", str(state), "--stop", timeout=120)
            out, err = again.communicate(timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert again.returncode == 0, err
    assert b"metadata: userdata from CDROM /dev/sr0" in out  # the recorded data ISO, attached again


def _wait_for_ssh(key: Path, port: int, running: Callable[[], bool]) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + BOOT_TIMEOUT
    while True:
        result = _ssh(key, port, "cat /etc/os-release")
        if result.returncode == 0 or time.monotonic() > deadline or not running():
            return result
        time.sleep(2)


@pytest.mark.boot
def test_a_state_folder_keeps_its_disk_across_runs(shared_cache: Path, tmp_path: Path) -> None:
    built = build(TEST_SPECS / "disk.yml", shared_cache, tmp_path)
    state = tmp_path / "state"
    first = boot(built, "--state", str(state), "--disk", "size=64M")  # no file: disk0.qcow2 in the state folder
    assert (state / "disk0.qcow2").is_file()
    in_order(first, "format: /dev/vda is blank", "mount: /dev/vda1 on /var/lib", "persist: wrote the marker")
    # The second run names only the state folder: the output and the disk come from its record.
    done = distrokit(built.cache, "run", "--state", str(state), "--networking", "none", timeout=BOOT_TIMEOUT + 30)
    assert done.returncode == 0, done.stderr
    in_order(done.stdout, "format: /dev/vda has a partition table", "persist: found written-on-first-boot")
    in_order((state / "console.log").read_text(errors="replace"), "persist: wrote", "persist: found")


@pytest.mark.boot
def test_linuxkit_format_and_mountie_command_lines(shared_cache: Path, tmp_path: Path) -> None:
    """LinuxKit's own `format -label` and `mountie -label L PATH` lines: two disks, each found by its label."""
    built = build(TEST_SPECS / "linuxkit-disks.yml", shared_cache, tmp_path)
    disks = [f"{tmp_path / name},size=32M" for name in ("a.img", "b.img")]
    log = boot(built, "--disk", disks[0], "--disk", disks[1], "--networking", "none")
    in_order(log, "format: /dev/vda is blank", "format: /dev/vdb is blank", "mount: /dev/vda1 on /var/lib/docker")
    assert "mounted: /dev/vda1 /var/lib/docker ext4" in log
    assert "mounted: /dev/vdb1 /var/foo ext4" in log


@pytest.mark.boot
def test_linuxkit_packages_called_as_linuxkit_calls_them(shared_cache: Path, tmp_path: Path) -> None:
    """sysfs, modprobe, binfmt, rngd, dhcpcd, format, mountie, swap, acpid, ntpd, node_exporter and
    ca-certificates, each with LinuxKit's command line, and a one-line curl recipe, in one boot."""
    built = build(TEST_SPECS / "packages.yml", shared_cache, tmp_path)
    # binfmt's 29 emulators: 74 MB more initrd, 290 MB more unpacked; LinuxKit's binfmt case boots with 2 GiB too
    log = boot(built, "--disk", f"{tmp_path / 'data.img'},size=64M", "--mem", "2048")
    assert "curl 7." in log and "Protocols:" in log  # `packages: [curl]` brought every library curl needs
    assert "debian: bash 5.2" in log and "ls (GNU coreutils)" in log  # the debian base image
    checks = re.findall(r"check: \S+ (?:ok|FAILED)", log)  # the getty prompt may share a line
    names = ["ca-certificates", "sysfs", "modprobe", "binfmt", "dhcpcd", "swap"]
    names += ["node_exporter", "acpid", "ntpd", "rngd"]
    assert checks == [f"check: {name} ok" for name in names], log[-4000:]


@pytest.mark.boot
def test_specs_linuxkit_runs_every_container_it_lists(shared_cache: Path, tmp_path: Path) -> None:
    """specs/linuxkit.yml, our counterpart of LinuxKit's reference spec, with a check merged after it."""
    built = build([SPECS / "linuxkit.yml", TEST_SPECS / "linuxkit-check.yml"], shared_cache, tmp_path)
    log = boot(built)
    checks = re.findall(r"check: \S+ (?:ok|FAILED)", log)  # the getty prompt may share a line
    names = ["sysctl", "dhcpcd", "ca-certificates", "getty", "rngd", "httpd"]
    assert checks == [f"check: {name} ok" for name in names], log[-4000:]
    in_order(log, "check: httpd ok", "so long and thanks for all the fish")
