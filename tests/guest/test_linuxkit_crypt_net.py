"""LinuxKit's losetup, dm-crypt, swap --encrypt, ip with WireGuard and bpftrace, booted for real as
LinuxKit's cases 040_packages/004_dm-crypt, 023_wireguard and 002_bpftrace check them (a spec, a check
inside the guest, PASS lines), and the onboot containers' output where LinuxKit's init keeps it:
tests/specs/linuxkit-crypt-net.yml in one boot, tests/specs/linuxkit-bpftrace.yml (bpftrace brings
LLVM: a 74 MB initrd) in another."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bootkit import boot_path
from conftest import build

SPECS = Path(__file__).resolve().parents[1] / "specs"
# In the order the guest prints them: the onboot check's, then the root's after onboot.
CRYPT_NET_CHECKS = [
    "losetup-default",
    "losetup-dev-size",
    "dm-crypt-luks",
    "dm-crypt-plain",
    "swap-encrypted",
    "wireguard",
    "onboot-logs",
]


def _verdicts(console: str) -> list[tuple[str, str]]:
    return re.findall(r"^(PASS|FAIL): (\S+)", console, re.MULTILINE)


@pytest.mark.boot
def test_loop_devices_luks_and_plain_dm_crypt_encrypted_swap_and_wireguard(shared_cache: Path, tmp_path: Path) -> None:
    built = build(SPECS / "linuxkit-crypt-net.yml", shared_cache, tmp_path)
    # LUKS2's key derivation (argon2) takes memory: LinuxKit's cases boot with 1 GiB
    console = boot_path(built, built.prefix, "--networking", "none", "--mem", "1024")
    assert _verdicts(console) == [("PASS", name) for name in CRYPT_NET_CHECKS], console[-5000:]
    # each component's own words, as LinuxKit's scripts say them
    assert "crypto: /dev/loop0 holds no LUKS volume: formatting one" in console
    assert "swap: /var/swap/file (8M) is on, encrypted as /dev/mapper/swapfile" in console
    assert "lk-wg-config: wg1 configured from /etc/wireguard/wg1.conf" in console


@pytest.mark.boot
def test_bpftrace_lists_probes_and_runs_a_program(shared_cache: Path, tmp_path: Path) -> None:
    built = build(SPECS / "linuxkit-bpftrace.yml", shared_cache, tmp_path)
    console = boot_path(built, built.prefix, "--networking", "none", "--mem", "2048")
    assert _verdicts(console) == [("PASS", "bpftrace-list"), ("PASS", "bpftrace-begin")], console[-5000:]
