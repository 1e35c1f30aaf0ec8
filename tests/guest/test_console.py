"""buildlib.guest.console: the guest's console as QEMU arguments, and on a (pseudo-)terminal for real.

The boot drives `distrokit run` on a pseudo-terminal as a user at a keyboard would: the shell in the
getty container answers with the system's os-release, Ctrl-C interrupts a command in the guest and
not the VM, Ctrl-A X ends QEMU, and the terminal's settings are as they were before.
"""

from __future__ import annotations

import sys
import termios
import time
from pathlib import Path

import pytest
from bootkit import Terminal
from conftest import Built, build

from buildlib.guest.console import Console, serial_args

BOOT_TIMEOUT = 400


def test_serial_args_per_console_mode(tmp_path: Path) -> None:
    log, sock = tmp_path / "console.log", tmp_path / "console.sock"
    terminal = serial_args(Console.TERMINAL)
    assert terminal[:2] == ["-chardev", "stdio,id=con0,mux=on,signal=off"]  # Ctrl-C is the guest's
    assert terminal[-2:] == ["-mon", "chardev=con0,mode=readline"]  # QEMU's Ctrl-A escapes
    assert serial_args(Console.PIPE, log)[1] == f"stdio,id=con0,signal=off,logfile={log},logappend=on"
    detached = serial_args(Console.DETACHED, log, sock)[1]
    assert detached.startswith(f"socket,id=con0,path={sock},server=on,wait=off") and f"logfile={log}" in detached
    with pytest.raises(ValueError):
        serial_args(Console.DETACHED, log)


@pytest.mark.boot
def test_console_is_a_serial_line_with_escapes(sshd_build: Built) -> None:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(sshd_build.cache), "run", str(sshd_build.prefix)]
    terminal = Terminal([*command, "--data", "plain words, not JSON"])
    try:
        terminal.expect(b"Ctrl-A X ends the VM", 60)
        terminal.expect(b"`installed` lists what is in this system", BOOT_TIMEOUT)
        terminal.expect(b"distrokit:~# ", 60)  # login -f puts the shell in root's home
        time.sleep(1)  # the shell asks the terminal where its cursor is; let that pass
        terminal.type(b"\nhead -3 /etc/os-release; cat /run/config/userdata; echo; installed | head -1\n")
        terminal.expect(b'PRETTY_NAME="distrokit minimal Linux"', 60)  # the system's, not the getty image's
        terminal.expect(b"plain words, not JSON", 30)  # --data as a plain string lands in /run/config/userdata
        terminal.expect(b"distrokit/kernel:", 30)  # the installed list is one command away
        terminal.type(b"cat /etc/motd\n")  # the system's /etc, not only the getty image's
        terminal.expect(b"Welcome to the distrokit sshd example.", 30)  # the spec's file
        terminal.type(b"echo sleeping-$((1 + 1)); sleep 1000\n")
        terminal.expect(b"sleeping-2", 60)
        time.sleep(3)  # under load the shell may take a moment to start sleep
        terminal.type(b"\x03")  # Ctrl-C: to the guest's shell, which interrupts sleep
        terminal.type(b"echo still-$((6 * 7))\n")
        terminal.expect(b"still-42", 60)  # the sleep was interrupted and the VM runs on
        assert terminal.process.poll() is None
        terminal.type(b"\x01x")  # Ctrl-A X: QEMU ends
        assert terminal.process.wait(timeout=60) == 0
        terminal.expect(b"guest ended after", 10)
        assert termios.tcgetattr(terminal.slave) == terminal.settings  # raw mode undone
    finally:
        terminal.close()


@pytest.mark.boot
def test_the_power_button_powers_off_cleanly_through_acpid(shared_cache: Path, tmp_path: Path) -> None:
    """QEMU's monitor (Ctrl-A C) `system_powerdown` presses the ACPI power button: the acpid service
    asks init for a power-off, onshutdown runs, and the run ends as a power-off does."""
    built = build(Path(__file__).parents[1] / "specs" / "acpid.yml", shared_cache, tmp_path)
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(built.cache), "run", str(built.prefix)]
    terminal = Terminal([*command, "--networking", "none"])
    try:
        terminal.expect(b"acpid is listening", BOOT_TIMEOUT)
        terminal.type(b"\x01c")  # Ctrl-A C: QEMU's monitor
        terminal.expect(b"(qemu)", 30)
        terminal.type(b"system_powerdown\n")
        terminal.expect(b"acpid: acpid: power button: powering off", 120)
        terminal.expect(b"onshutdown ran", 120)
        assert terminal.process.wait(timeout=120) == 0
    finally:
        terminal.close()
