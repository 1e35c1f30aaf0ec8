"""Output formats: each a deterministic writer from the built parts to files in the output folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInput
from ..tree import Tree


@dataclass(frozen=True)
class BuiltParts:
    """What every output format starts from: the kernel, its command line and the root's segments.

    `root`, when given, computes the merged root tree from the same parts (entries stream their data
    from the store); formats that write a file system rather than an initrd call it."""

    kernel: Path | None
    cmdline: str
    segments: tuple[Path, ...]
    root: Callable[[], Tree] | None = None


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]
    write: Callable[[BuiltParts, Path], None]
    needs_kernel: bool = False  # checked before a build starts (see buildlib.preflight)

    def targets(self, prefix: Path) -> list[Path]:
        return [prefix.with_name(prefix.name + suffix) for suffix in self.suffixes]


FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInput(f"unknown output format {name!r}; known formats: {', '.join(sorted(FORMATS))}") from None


def no_kernel_message(format_name: str) -> str:
    return f"the {format_name} format needs a `kernel` section in the spec: add one, or ask for `-f tar`"


def _kernel_initrd(parts: BuiltParts, prefix: Path) -> None:
    from ..fsutil import copy_file_atomic, write_bytes_atomic
    from .initrd import join_segments

    if parts.kernel is None:
        raise BadInput(no_kernel_message("kernel+initrd"))
    kernel, initrd, cmdline = FORMATS["kernel+initrd"].targets(prefix)
    join_segments(parts.segments, initrd)
    copy_file_atomic(parts.kernel, kernel)
    write_bytes_atomic(cmdline, parts.cmdline.encode())


register(Format("kernel+initrd", ("-kernel", "-initrd.img", "-cmdline"), _kernel_initrd, needs_kernel=True))


from . import tar as tar  # noqa: E402  (importing it registers the tar format)
