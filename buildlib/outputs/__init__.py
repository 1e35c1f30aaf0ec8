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


def _kernel_initrd(parts: BuiltParts, prefix: Path) -> None:
    from ..fsutil import write_bytes_atomic
    from .initrd import join_segments

    if parts.kernel is None:
        raise BadInput("the kernel+initrd format needs a `kernel` section in the spec")
    kernel, initrd, cmdline = FORMATS["kernel+initrd"].targets(prefix)
    join_segments(parts.segments, initrd)
    write_bytes_atomic(kernel, parts.kernel.read_bytes())
    write_bytes_atomic(cmdline, parts.cmdline.encode())


register(Format("kernel+initrd", ("-kernel", "-initrd.img", "-cmdline"), _kernel_initrd))


from . import tar as tar  # noqa: E402  (importing it registers the tar format)
