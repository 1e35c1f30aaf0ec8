"""Everything a build would reject that needs no image, checked before any task runs.

`distrokit validate` and every build (`distrokit build`, `explain`, `sbom`, dodo.py) call
`check_buildable`, so validate says `valid` exactly when a build would get past its spec checks,
and both print the same messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import outputs
from ..errors import SpecError
from ..rootfs import bundles
from ..rootfs import parts as rootfs
from ..spec.model import Spec
from ..store.platforms import DEFAULT_ARCH


class NotBuildable(SpecError):
    """A spec that parses but cannot be built as it is: one line per problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def is_empty(spec: Spec) -> bool:
    return not (spec.kernel or spec.init or spec.containers() or spec.files or spec.volumes)


def problems(spec: Spec, formats: Sequence[str], arch: str = DEFAULT_ARCH) -> list[str]:
    """One line per problem; `formats` are the outputs asked for (none for commands that write none),
    for the architecture `arch`."""
    files = ", ".join(spec.files_read) or "the spec"
    if is_empty(spec):
        return [f"{files}: the spec is empty: nothing to build (give at least a `kernel` and an `init`)"]
    found = [problem for problem in (outputs.arch_problem(name, arch) for name in formats) if problem]
    found += [
        f"{files}: {outputs.no_kernel_message(fmt.name)}"
        for fmt in (outputs.get_format(name) for name in formats)
        if fmt.needs_kernel and spec.kernel is None
    ]
    found += bundles.volume_problems(spec)
    found += rootfs.file_sources_missing(spec)
    found += rootfs.file_owners_unknown(spec)
    return found


def check_buildable(spec: Spec, formats: Sequence[str], arch: str = DEFAULT_ARCH) -> None:
    """Raise NotBuildable (bad input, exit 2) when `problems` finds any."""
    found = problems(spec, formats, arch)
    if found:
        raise NotBuildable(found)
