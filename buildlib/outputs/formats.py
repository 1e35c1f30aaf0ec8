"""Output formats: a registry of deterministic writers from the built parts to files in the output folder.

Every format is LinuxKit's, with LinuxKit's file names. A format names the suffixes it writes after the
output prefix, the stages it is made from (intermediates in `stages`: the joined initrd, the merged
root as a tar, a BIOS or an EFI disk) and whether it takes `--size`. `-kernel` and `-cmdline` are the
same bytes whichever format asks for them, so several formats may share them; any other file name two
formats would both write is a clash, refused before anything is built.

The registry knows which module defines each format and stage (`FORMAT_HOMES`, `STAGE_HOMES`) and imports
it when the format or stage is first asked for: a kernel+initrd build loads no disk, ISO or tar writer.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..fsutil import read_json, write_json_atomic
from ..rootfs.tree import Tree

if TYPE_CHECKING:
    from .efi import EfiLoader, SignedLoaders

DEFAULT_FORMAT = "kernel+initrd"
DEFAULT_DISK_SIZE = 1024 << 20  # LinuxKit's default --size, 1024M
KERNEL_SUFFIX = "-kernel"
CMDLINE_SUFFIX = "-cmdline"
BOOT_INITRD_SUFFIX = "-boot-initrd.img"  # the initrd that mounts a squashfs, erofs or ISO root
SHARED_SUFFIXES = (KERNEL_SUFFIX, CMDLINE_SUFFIX, BOOT_INITRD_SUFFIX)
MiB = 1 << 20


@dataclass(frozen=True, eq=False)
class BuiltParts:
    """What every output format starts from: the kernel, its command line and the root's segments.

        `root`, when given, computes the merged root tree from the same parts (entries stream their data
        from the store). `boot_segments` are the kernel-module and init segments alone (the initrd that
        mounts a squashfs, erofs or ISO root). `stage_dir` holds the stages a format reads; `key` is a
        content key of everything the outputs are made of, from which ids (FAT serials, GUIDs) derive.
        `arch` is the architecture built for; `efi_modules` finds GRUB's modules for an EFI loader the
        host has no modules for (called only by the formats that write a loader); `signed_loaders`, with
    --secure-boot, the signed shim and GRUB the EFI formats boot through instead."""

    kernel: Path | None
    cmdline: str
    segments: tuple[Path, ...]
    root: Callable[[], Tree] | None = None
    ucode: Path | None = None
    boot_segments: tuple[Path, ...] = ()
    size: int = DEFAULT_DISK_SIZE
    epoch: int = 0
    key: str = ""
    # a content key of the root alone (its segments, the epoch): the ids of an image of the root alone
    # derive from it, so a new command line, which such a format's task ignores, leaves its bytes as they are
    root_key: str = ""
    stage_dir: Path | None = None
    arch: str = "amd64"
    efi_modules: Callable[[EfiLoader], Path] | None = None
    kernel_image: str = ""  # the kernel section's image: the origin the tar gives boot/
    signed_loaders: SignedLoaders | None = None  # --secure-boot: EFI media boot through shim and signed GRUB

    def efi_loader(self) -> EfiLoader:
        """The EFI loader for this build's architecture, with its module folder found."""
        from .efi import loader_for

        loader = loader_for(self.arch)
        if self.efi_modules is None or loader.module_dir().is_dir():
            return loader
        return dataclasses.replace(loader, modules=self.efi_modules(loader))

    def stage(self, name: str) -> Path:
        if self.stage_dir is None:
            raise BadInput(f"this build has no stage folder for {name!r}")
        return stage_path(self.stage_dir, name)

    def need_kernel(self, fmt: str) -> Path:
        if self.kernel is None:
            raise BadInput(f"the {fmt} format needs a `kernel` section in the spec")
        return self.kernel


@dataclass(frozen=True)
class Format:
    """An output format: the files it writes after the prefix, the stages it reads, and its writer."""

    name: str
    suffixes: tuple[str, ...]
    write: Callable[[BuiltParts, Path], None]
    stages: tuple[str, ...] = ()
    disk: bool = False  # takes --size
    uses_cmdline: bool = True  # its own files hold the command line (else only NAME-cmdline does)
    needs_kernel: bool = True  # checked before a build starts (outputs.preflight); tar, docker write what there is
    arches: tuple[str, ...] = ()  # the architectures it can be built for; empty: every one
    doc: str = field(default="", compare=False)

    def targets(self, prefix: Path) -> list[Path]:
        return [prefix.with_name(prefix.name + suffix) for suffix in self.suffixes]

    def own_targets(self, prefix: Path) -> list[Path]:
        """The files only this format writes (-kernel and -cmdline are written once for all)."""
        return [prefix.with_name(prefix.name + s) for s in self.suffixes if s not in SHARED_SUFFIXES]

    @property
    def shared(self) -> tuple[str, ...]:
        return tuple(suffix for suffix in self.suffixes if suffix in SHARED_SUFFIXES)


FORMATS: dict[str, Format] = {}  # the formats registered so far (see all_formats)

# The module of this package that registers each format, imported on first use (tests hold it complete).
_DISKS = ("raw-bios", "raw-efi", "qcow2-bios", "qcow2-efi", "vhd", "dynamic-vhd", "vmdk", "gcp", "aws")
FORMAT_HOMES: dict[str, str] = {
    "kernel+initrd": "formats",
    **dict.fromkeys(("tar", "docker", "tar-kernel-initrd"), "tar"),
    **dict.fromkeys(("kernel+squashfs", "kernel+erofs"), "fsimage"),
    **dict.fromkeys(("iso-bios", "iso-efi", "iso-efi-initrd", "kernel+iso"), "iso"),
    **dict.fromkeys(_DISKS, "disk"),
}


def _import_home(home: str) -> None:
    importlib.import_module(f"{__package__}.{home}")


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    if name not in FORMATS and name in FORMAT_HOMES:
        _import_home(FORMAT_HOMES[name])
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInput(f"unknown output format {name!r}; known formats: {', '.join(sorted(FORMAT_HOMES))}") from None


def all_formats() -> dict[str, Format]:
    """Every format, each writer module imported (what listings and documentation need)."""
    for name in FORMAT_HOMES:
        get_format(name)
    return FORMATS


def parse_formats(values: Iterable[str] | None) -> tuple[str, ...]:
    """`-f` values, each one or several comma-separated names, in order, each once; clashes refused."""
    names: list[str] = []
    for value in values or ():
        for name in (part.strip() for part in value.split(",")):
            if not name:
                raise BadInput(f"-f {value!r}: an empty format name; give e.g. -f kernel+initrd,iso-bios")
            get_format(name)
            if name not in names:
                names.append(name)
    if not names:
        names = [DEFAULT_FORMAT]
    check_clashes(names)
    return tuple(names)


def check_clashes(names: Sequence[str]) -> None:
    written: dict[str, str] = {}
    for name in names:
        for suffix in get_format(name).suffixes:
            if suffix in SHARED_SUFFIXES:
                continue
            other = written.setdefault(suffix, name)
            if other != name:
                raise BadInput(
                    f"formats {other} and {name} both write NAME{suffix}: ask for one of them per build "
                    "(or build twice with different --name)"
                )


BIOS_ARCHES = ("amd64",)  # the formats that boot through a PC BIOS (syslinux, isolinux) are for x86 only


def arch_problem(name: str, arch: str) -> str | None:
    """Why format `name` cannot be built for `arch` (one line), or None when it can."""
    fmt = get_format(name)
    if not fmt.arches or arch in fmt.arches:
        return None
    usable = ", ".join(sorted(n for n, f in all_formats().items() if not f.arches or arch in f.arches))
    why = f"it boots through a PC BIOS, which {arch} machines do not have"
    if fmt.arches != BIOS_ARCHES:
        why = f"distrokit has no EFI loader for {arch}"
    return f"-f {name}: {name} cannot be built for {arch} ({why}); {arch} formats: {usable}"


_SIZE = re.compile(r"(\d+)([KMG]?)B?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`--size` as LinuxKit takes it: a number of bytes with K, M or G (a bare number is MB)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None or int(match[1]) == 0:
        raise BadInput(f"--size {text!r}: give a size such as 1024M or 2G")
    unit = {"": MiB, "K": 1 << 10, "M": MiB, "G": 1 << 30}[match[2].upper()]
    size = int(match[1]) * unit
    if size % MiB:
        raise BadInput(f"--size {text!r}: give a whole number of megabytes")
    return size


def too_small(fmt: str, size: int, needed: int) -> BadInput:
    mib = -(-needed // MiB)
    return BadInput(
        f"--size {size // MiB}M is too small for {fmt}: it needs at least {mib}M; give --size {mib}M or more"
    )


def no_kernel_message(format_name: str) -> str:
    return f"the {format_name} format needs a `kernel` section in the spec: add one, or ask for `-f tar`"


def _kernel_initrd(parts: BuiltParts, prefix: Path) -> None:
    from .initrd import join_segments

    if parts.kernel is None:
        raise BadInput(no_kernel_message("kernel+initrd"))
    (initrd,) = FORMATS["kernel+initrd"].own_targets(prefix)
    join_segments(parts.segments, initrd, parts.ucode)


register(
    Format(
        "kernel+initrd",
        (KERNEL_SUFFIX, "-initrd.img", CMDLINE_SUFFIX),
        _kernel_initrd,
        uses_cmdline=False,
        doc="the kernel, the initrd (the ucode cpio first when there is one) and the command line",
    )
)


def shared_files(names: Iterable[str]) -> tuple[str, ...]:
    """The shared suffixes (-kernel, -cmdline, -boot-initrd.img) the given formats write, in order."""
    wanted = {suffix for name in names for suffix in get_format(name).shared}
    return tuple(suffix for suffix in SHARED_SUFFIXES if suffix in wanted)


def write_shared_files(parts: BuiltParts, prefix: Path, suffixes: Sequence[str]) -> None:
    """NAME-kernel, NAME-cmdline and NAME-boot-initrd.img: the same bytes for every format that has them."""
    from ..fsutil import copy_file_atomic, write_bytes_atomic

    kernel = parts.need_kernel("this")
    for suffix in suffixes:
        target = prefix.with_name(prefix.name + suffix)
        if suffix == KERNEL_SUFFIX:
            copy_file_atomic(kernel, target)
        elif suffix == CMDLINE_SUFFIX:
            write_bytes_atomic(target, parts.cmdline.encode())
        else:
            copy_file_atomic(parts.stage("boot-initrd"), target)


# stages: the intermediates several formats share (their builders register in stages.py and tar.py) -----
@dataclass(frozen=True)
class Stage:
    """An intermediate several formats share, written once per build into the stage folder."""

    name: str
    filename: str
    build: Callable[[BuiltParts, Path], dict[str, object] | None]  # returns facts to keep in .key
    needs: tuple[str, ...] = ()
    uses_root: bool = False  # reads the merged tree (the layers), not only the segments
    disk: bool = False  # its size is --size


STAGES: dict[str, Stage] = {}  # the stages registered so far
STAGE_HOMES: dict[str, str] = {
    **dict.fromkeys(("initrd", "boot-initrd", "bios-disk", "efi-disk"), "stages"),
    "root": "tar",
}


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        _import_home(STAGE_HOMES[name])
    return STAGES[name]


def stage_path(stage_dir: Path, name: str) -> Path:
    return stage_dir / get_stage(name).filename


def key_path(stage_dir: Path, name: str) -> Path:
    return stage_dir / f"{get_stage(name).filename}.key"


def stage_info(stage_dir: Path, name: str) -> dict[str, object]:
    value = read_json(key_path(stage_dir, name))
    assert isinstance(value, dict)
    return value


def stages_for(names: tuple[str, ...]) -> list[str]:
    """Every stage the given ones need, each after what it needs."""
    order: list[str] = []

    def visit(name: str) -> None:
        for need in get_stage(name).needs:
            visit(need)
        if name not in order:
            order.append(name)

    for name in names:
        visit(name)
    return order


def run_stage(name: str, parts: BuiltParts, key: str) -> None:
    assert parts.stage_dir is not None
    parts.stage_dir.mkdir(parents=True, exist_ok=True)
    extra = get_stage(name).build(parts, stage_path(parts.stage_dir, name)) or {}
    write_json_atomic(key_path(parts.stage_dir, name), {"key": key, **extra})


def register_stage(stage: Stage) -> None:
    STAGES[stage.name] = stage
