"""Issue 28 benchmark: what Secure Boot costs a boot under QEMU (TCG), side by side in one run.

tests/specs/secureboot.yml (kernel, init, a script that powers off) is built twice into one store:
plain EFI media (GRUB with its config built in) and `--secure-boot` media (shim, Debian's signed
GRUB, its grub.cfg). Each medium (-efi.iso, -efi.img) boots three ways, taking turns:

- plain: the plain media under OVMF.fd on QEMU's default PC (what `run` does without flags);
- signed chain: the --secure-boot media under the same firmware (the cost of shim and signed GRUB);
- enforced: the --secure-boot media with `run --secure-boot` (OVMF's secboot build, q35 with SMM,
  Microsoft's keys enrolled: every image checked).

The time is QEMU's lifetime to the guest's power-off, as `distrokit run` reports it; medians are
printed with the load average before and after (the machine is shared).

    .venv/bin/python benchmarks/secure_boot.py [--runs 3] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "tests" / "specs" / "secureboot.yml"
POWERED_OFF = re.compile(r"guest powered off after ([0-9.]+) s")
WAYS = (("plain", "plain", ()), ("signed chain", "signed", ()), ("enforced", "signed", ("--secure-boot",)))


def distrokit(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    return subprocess.run(command, cwd=REPO, text=True, capture_output=True, check=False)


def build(cache: Path, out: Path, name: str, *flags: str) -> None:
    done = distrokit(
        cache, "build", str(SPEC), "-f", "iso-efi,raw-efi", "--size", "64M", "--dir", str(out), "--name", name, *flags
    )
    if done.returncode != 0:
        raise SystemExit(f"building {name} failed: {done.stderr}")


def boot(cache: Path, medium: Path, *flags: str) -> float:
    done = distrokit(cache, "run", str(medium), "--timeout", "300", *flags)
    found = POWERED_OFF.search(done.stderr)
    if done.returncode != 0 or found is None or "secureboot-test: lockdown" not in done.stdout:
        raise SystemExit(f"booting {medium.name} {' '.join(flags)} failed: {done.stderr[-2000:]}")
    return float(found[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="distrokit-sb-bench-"))
    cache, out = work / "cache", work / "out"
    build(cache, out, "plain")
    build(cache, out, "signed", "--secure-boot")
    load_before = os.getloadavg()[0]
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.runs):
        for suffix in ("-efi.iso", "-efi.img"):
            for way, media, flags in WAYS:
                times.setdefault((suffix, way), []).append(boot(cache, out / f"{media}{suffix}", *flags))
    load_after = os.getloadavg()[0]
    print(f"medians of {args.runs} boots to power-off, TCG (load {load_before:.1f} -> {load_after:.1f})")
    for suffix in ("-efi.iso", "-efi.img"):
        plain = statistics.median(times[(suffix, "plain")])
        for way, _, _ in WAYS:
            median = statistics.median(times[(suffix, way)])
            spread = f"{min(times[(suffix, way)]):.1f}-{max(times[(suffix, way)]):.1f}"
            print(f"  {suffix:9} {way:13} {median:6.1f} s  ({spread})  {median - plain:+.1f} s against plain")


if __name__ == "__main__":
    main()
