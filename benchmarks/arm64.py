"""Issue 14 benchmark: specs/minimal.yml built for amd64 and for arm64, and each booted to power-off.

Each build is a real `distrokit build` process into a fresh store whose .deb folder was filled by a
warm-up build (so the figure is the build, not the download); apt's arm64 package lists are already
fetched. Then the same store builds the other architecture's output again (nothing should run), and
each output boots under QEMU TCG (`distrokit run`): qemu-system-x86_64 for amd64, qemu-system-aarch64
`virt` for arm64. With the media figures (default), every format both architectures share
(kernel+initrd, tar, kernel+squashfs, iso-efi, raw-efi, qcow2-efi) is built in one more fresh store per
architecture, and each bootable one boots: the EFI formats through OVMF (amd64) and AAVMF (arm64).
The load average is printed before and after: the machine may be shared.

    .venv/bin/python benchmarks/arm64.py [--workdir DIR] [--runs 1] [--no-boot] [--no-media]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "minimal.yml"
ARCHES = ("amd64", "arm64")
MEDIA_FORMATS = "kernel+initrd,tar,kernel+squashfs,iso-efi,raw-efi,qcow2-efi"
MEDIA_BOOTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("kernel+initrd", "", ()),
    ("kernel+squashfs", "", ("--squashfs",)),
    # --uefi: OVMF for amd64 (a PC boots SeaBIOS without it); arm64's virt boots media through AAVMF anyway
    ("iso-efi", "-efi.iso", ("--uefi",)),
    ("raw-efi", "-efi.img", ("--uefi",)),
    ("qcow2-efi", "-efi.qcow2", ("--uefi",)),
)


def distrokit(cache: Path, *args: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {done.stderr[-2000:]}")
    return seconds, done.stderr


def fresh_store(workdir: Path, name: str) -> Path:
    cache = workdir / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "debs").symlink_to(workdir / "debs", target_is_directory=True)
    return cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--no-boot", action="store_true")
    parser.add_argument("--no-media", action="store_true", help="only kernel+initrd, as before the EFI formats")
    args = parser.parse_args()
    print(f"load average at the start: {load()}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="distrokit-arm64-bench-"))
    (workdir / "debs").mkdir(parents=True, exist_ok=True)
    out = workdir / "out"
    warm = fresh_store(workdir, "warm")
    for arch in ARCHES:  # fills debs/ (and apt's arm64 lists)
        distrokit(warm, "build", "-q", "--arch", arch, "--dir", str(out), str(SPEC))
    builds: dict[str, list[float]] = {arch: [] for arch in ARCHES}
    switched: dict[str, list[float]] = {arch: [] for arch in ARCHES}
    for run in range(args.runs):
        cache = fresh_store(workdir, f"store-{run}")
        for arch in ARCHES:
            seconds, _ = distrokit(cache, "build", "-q", "--arch", arch, "--dir", str(out), str(SPEC))
            builds[arch].append(seconds)
        for arch in ARCHES:  # the other architecture's build in between: both are still up to date
            seconds, _ = distrokit(cache, "build", "-q", "--arch", arch, "--dir", str(out), str(SPEC))
            switched[arch].append(seconds)
    for arch in ARCHES:
        print(
            f"{arch}: full build {statistics.median(builds[arch]):.1f} s, "
            f"again after the other arch {statistics.median(switched[arch]):.2f} s (median of {args.runs})"
        )
    if not args.no_boot:
        for arch, prefix in (("amd64", "minimal"), ("arm64", "minimal-arm64")):
            print(f"{arch}: boot to power-off {boot(warm, out / prefix)}")
    if not args.no_media:
        media(workdir, args.no_boot)
    print(f"load average at the end: {load()}")


def media(workdir: Path, no_boot: bool) -> None:
    """Every shared format for each architecture in a fresh store (components built, .debs at hand)."""
    out = workdir / "media-out"
    for arch in ARCHES:
        cache = fresh_store(workdir, f"media-{arch}")
        name = f"media-{arch}"
        command = ["build", "-q", "--arch", arch, "--dir", str(out), "--name", name, "--size", "256M"]
        seconds, _ = distrokit(cache, *command, "-f", MEDIA_FORMATS, str(SPEC))
        print(f"{arch}: full build of {MEDIA_FORMATS} {seconds:.1f} s")
        if no_boot:
            continue
        for fmt, suffix, flags in MEDIA_BOOTS:
            print(f"{arch}: {fmt} boot to power-off {boot(cache, out / (name + suffix), *flags)}")


def boot(cache: Path, target: Path, *flags: str) -> str:
    seconds, stderr = distrokit(cache, "run", "--networking", "none", "--timeout", "900", str(target), *flags)
    return f"{seconds:.1f} s ({stderr.strip().splitlines()[-1]})"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
