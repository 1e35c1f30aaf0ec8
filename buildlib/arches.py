"""Architectures by Debian's names: what a build is for, how names carry it, what an ELF file is built for.

Shared by every stage (the store keeps several platforms under one name, the guest picks an emulator
from the kernel, Debian packages are fetched per architecture); imports only `errors`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import BadInput

# Debian's name of an architecture -> (GNU multiarch triplet, ELF e_machine)
ARCHITECTURES: dict[str, tuple[str, int]] = {
    "amd64": ("x86_64-linux-gnu", 62),
    "arm64": ("aarch64-linux-gnu", 183),
    "riscv64": ("riscv64-linux-gnu", 243),
}
DEFAULT_ARCH = "amd64"  # what a build is for unless --arch says otherwise; its names carry no suffix
_UNAME = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "riscv64": "riscv64"}
ELF_MAGIC = b"\x7fELF"


def normalise(arch: str) -> str:
    """`arm64`, `linux/arm64`, `aarch64` -> `arm64`; BadInput for an architecture distrokit does not know."""
    name = arch.removeprefix("linux/").split("/")[0]
    name = _UNAME.get(name, name)
    if name not in ARCHITECTURES:
        raise BadInput(f"--arch {arch!r}: distrokit knows {', '.join(sorted(ARCHITECTURES))}")
    return name


def arch_suffix(arch: str) -> str:
    """What tells an architecture's component refs, tasks, pins and outputs from amd64's (whose names stay as
    they were)."""
    return "" if arch == DEFAULT_ARCH else f"-{arch}"


def host_arch() -> str:
    machine = os.uname().machine
    return _UNAME.get(machine, machine)


def triplet(arch: str) -> str:
    return ARCHITECTURES[normalise(arch)][0]


def elf_arch(path: Path) -> str | None:
    """The Debian architecture an ELF file is built for (from its header's e_machine), None if not ELF."""
    try:
        with open(path, "rb") as handle:
            header = handle.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != ELF_MAGIC:
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return next((arch for arch, (_, number) in ARCHITECTURES.items() if number == machine), None)
