"""Issue 9 benchmark: packing time and size of every output format beside kernel+initrd, and the time
each bootable format takes under TCG from `distrokit run` to the guest's power-off.

The spec's parts are built first (so every format starts from segments already in the store); then
each format is a real `distrokit build -f FORMAT` under its own name (so its stages are written too,
as in a first build of that format). Boots are real `distrokit run` processes.

    .venv/bin/python benchmarks/formats.py [--cache DIR] [--workdir DIR] [--size 1024M] [--no-boot]
                                           [--formats a,b,c]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from buildlib.outputs import FORMAT_HOMES, get_format  # noqa: E402

SPEC = REPO / "specs" / "minimal.yml"
# What `distrokit run` boots for each bootable format: (file suffix, extra flags) per firmware.
BOOTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "kernel+initrd": [("", ())],
    "kernel+squashfs": [("-squashfs.img", ())],
    "kernel+erofs": [("-erofs.img", ())],
    "kernel+iso": [(".iso", ())],
    "iso-bios": [(".iso", ())],
    "iso-efi": [("-efi.iso", ("--uefi",))],
    "iso-efi-initrd": [("-efi-initrd.iso", ()), ("-efi-initrd.iso", ("--uefi",))],
    "raw-bios": [("-bios.img", ())],
    "raw-efi": [("-efi.img", ("--uefi",))],
    "qcow2-bios": [(".qcow2", ())],
    "qcow2-efi": [("-efi.qcow2", ("--uefi",))],
    "vhd": [(".vhd", ())],
    "dynamic-vhd": [(".vhd", ())],
    "vmdk": [(".vmdk", ())],
    "aws": [(".raw", ())],
}


def distrokit(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def pack(cache: Path, out: Path, fmt: str, size: str) -> float:
    name = "bench-" + re.sub(r"[^a-z0-9]+", "-", fmt)
    started = time.monotonic()
    done = distrokit(cache, "build", "-q", str(SPEC), "--dir", str(out), "--name", name, "-f", fmt, "--size", size)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{fmt}: {done.stderr.strip()}")
    return seconds


def sizes(out: Path, fmt: str) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of the format's own files."""
    name = "bench-" + re.sub(r"[^a-z0-9]+", "-", fmt)
    paths = get_format(fmt).targets(out / name)
    return sum(p.stat().st_size for p in paths), sum(p.stat().st_blocks * 512 for p in paths)


def boot(cache: Path, path: Path, flags: tuple[str, ...]) -> str:
    done = distrokit(cache, "run", str(path), "--timeout", "600", "--networking", "none", *flags)
    found = re.search(r"guest (?:powered off|halted \S+ \S+) after ([\d.]+) s", done.stderr)
    if done.returncode != 0 or found is None:
        return "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    return f"{float(found[1]):.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(REPO / "cache"))
    parser.add_argument("--workdir")
    parser.add_argument("--size", default="1024M")
    parser.add_argument("--no-boot", action="store_true")
    parser.add_argument("--formats", help="comma-separated; default all")
    args = parser.parse_args()
    cache = Path(args.cache).resolve()
    out = Path(args.workdir or tempfile.mkdtemp(prefix="distrokit-formats-")).resolve()
    wanted = (
        args.formats.split(",") if args.formats else ["kernel+initrd", *sorted(set(FORMAT_HOMES) - {"kernel+initrd"})]
    )
    warm = distrokit(cache, "build", "-q", str(SPEC), "--dir", str(out), "--name", "bench-warm")
    if warm.returncode != 0:
        raise SystemExit(warm.stderr)
    print(f"spec {SPEC.name}, --size {args.size}, outputs in {out}")
    print(f"{'format':18} {'pack s':>7} {'size MB':>9} {'on disk MB':>10}  boot to power-off")
    for fmt in wanted:
        seconds = pack(cache, out, fmt, args.size)
        apparent, allocated = sizes(out, fmt)
        name = "bench-" + re.sub(r"[^a-z0-9]+", "-", fmt)
        boots = []
        if not args.no_boot:
            for suffix, flags in BOOTS.get(fmt, []):
                label = "UEFI" if flags else "BIOS"
                boots.append(f"{label} {boot(cache, out / (name + suffix), flags)}")
        print(f"{fmt:18} {seconds:7.2f} {apparent / 1e6:9.1f} {allocated / 1e6:10.1f}  {', '.join(boots) or '-'}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
