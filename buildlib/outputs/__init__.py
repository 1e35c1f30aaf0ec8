"""Stage 5, outputs: every LinuxKit output format, written deterministically from the built parts.

Takes the root's parts (compressed segments, the kernel, the merged tree on demand) and gives the files
in the output folder, with LinuxKit's names; intermediates several formats share (the joined initrd, the
merged root tar, the BIOS and EFI disks) are stages written once per build. Imports `spec`, `store`,
`debian` and `rootfs`; never `release`, `guest`, `upkeep`, `tasks` or `cli`.

`formats` is the registry; importing this package imports every writer module, which registers its
formats and stages there.
"""

from . import disk, fsimage, iso, stages, tar  # noqa: F401  (importing them registers every format and stage)
from .formats import (
    BIOS_ARCHES,
    BOOT_INITRD_SUFFIX,
    CMDLINE_SUFFIX,
    DEFAULT_DISK_SIZE,
    DEFAULT_FORMAT,
    FORMATS,
    KERNEL_SUFFIX,
    SHARED_SUFFIXES,
    STAGES,
    BuiltParts,
    Format,
    MiB,
    Stage,
    arch_problem,
    check_clashes,
    get_format,
    key_path,
    no_kernel_message,
    parse_formats,
    parse_size,
    register,
    register_stage,
    run_stage,
    shared_files,
    stage_info,
    stage_path,
    stages_for,
    too_small,
    write_shared_files,
)

__all__ = [
    "DEFAULT_FORMAT",
    "DEFAULT_DISK_SIZE",
    "KERNEL_SUFFIX",
    "CMDLINE_SUFFIX",
    "BOOT_INITRD_SUFFIX",
    "SHARED_SUFFIXES",
    "MiB",
    "BuiltParts",
    "Format",
    "FORMATS",
    "register",
    "get_format",
    "parse_formats",
    "check_clashes",
    "BIOS_ARCHES",
    "arch_problem",
    "parse_size",
    "too_small",
    "no_kernel_message",
    "shared_files",
    "write_shared_files",
    "Stage",
    "STAGES",
    "stage_path",
    "key_path",
    "stage_info",
    "stages_for",
    "run_stage",
    "register_stage",
]
