"""Spec files (LinuxKit's YAML format) in, one frozen `Spec` out.

Knows nothing of images, doit or the filesystem beyond reading the YAML files (and checking that
an `@pkg:` folder exists). Every problem in every file is collected and raised at once as an
`InvalidSpec` (a `SpecError`), one `FILE:LINE:COLUMN: FIELD: message` line per problem. The schema
itself lives in `spec_schema` (the records) and `spec_nodes` (the engine that walks YAML nodes).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode

from ..errors import SpecError
from .indent import INDENTATION_PROBLEMS, explain_indentation
from .nodes import Context, Location, Record, Session, SpecIssue, compose_yaml, yaml_fields
from .schema import (
    Container,
    Device,
    DeviceCgroup,
    Document,
    FileEntry,
    IdMapping,
    Interface,
    Kernel,
    KernelFields,
    Mount,
    Namespaces,
    Resources,
    Runtime,
    Section,
    Volume,
)

__all__ = [
    "Container",
    "Device",
    "DeviceCgroup",
    "FileEntry",
    "IdMapping",
    "Interface",
    "InvalidSpec",
    "Kernel",
    "Location",
    "Mount",
    "Namespaces",
    "Resources",
    "Runtime",
    "Section",
    "Spec",
    "SpecIssue",
    "Volume",
    "load_spec",
    "parse_spec_text",
]

PackageResolver = Callable[[Path], str]  # may also have `named(text) -> str | None` (see Session.resolve_name)


class InvalidSpec(SpecError):
    """Every problem found in the spec files, one line each; `issues` has them as records."""

    def __init__(self, issues: Iterable[SpecIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


@dataclass(frozen=True)
class Spec:
    """The merged, validated spec. Image strings are as written (or as `@pkg:` resolved to)."""

    files_read: tuple[str, ...] = ()
    kernel: Kernel | None = None
    init: tuple[str, ...] = ()
    onboot: tuple[Container, ...] = ()
    onshutdown: tuple[Container, ...] = ()
    services: tuple[Container, ...] = ()
    files: tuple[FileEntry, ...] = ()
    volumes: tuple[Volume, ...] = ()
    warnings: tuple[str, ...] = ()

    def containers(self) -> tuple[Container, ...]:
        return self.onboot + self.onshutdown + self.services

    def images(self) -> tuple[str, ...]:
        """Every image the build needs, in spec order, each once."""
        refs = [self.kernel.image] if self.kernel else []
        refs += [*self.init, *(c.image for c in self.containers())]
        refs += [v.image for v in self.volumes if v.image is not None]
        return tuple(dict.fromkeys(refs))

    def to_dict(self) -> dict[str, Any]:
        """The merged spec under LinuxKit's keys: what `--dry-run` shows and `metadata:` files hold."""
        out: dict[str, Any] = {}
        if self.kernel is not None:
            out["kernel"] = self.kernel.to_dict()
        out["init"] = list(self.init)
        for section in Section:
            out[section.value] = [c.to_dict() for c in getattr(self, section.value)]
        out["files"] = [f.to_dict() for f in self.files]
        out["volumes"] = [v.to_dict() for v in self.volumes]
        return out

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (file contents) as literal blocks, as people write them."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def load_spec(paths: Sequence[str | Path], resolve_pkg: PackageResolver | None = None) -> Spec:
    """Read, validate and merge spec files in order, as `linuxkit build a.yml b.yml` does.

    `resolve_pkg` turns an `@pkg:DIR` folder (relative to the spec naming it) into an image reference;
    it may raise BadInput, which becomes an issue at that node."""
    if not paths:
        raise SpecError("no spec file given: name at least one YAML file")
    session = Session(resolve_pkg=resolve_pkg, resolve_name=getattr(resolve_pkg, "named", None))
    documents = []
    for path in paths:
        text = _read(str(path), session)
        if text is not None:
            documents.append(_parse_document(text, Context(str(path), Path(path).parent, session)))
    return _merge([str(p) for p in paths], documents, session)


def parse_spec_text(text: str, filename: str = "<string>", resolve_pkg: PackageResolver | None = None) -> Spec:
    """One spec given as text; `@pkg:` folders are relative to `filename`'s folder."""
    session = Session(resolve_pkg=resolve_pkg, resolve_name=getattr(resolve_pkg, "named", None))
    document = _parse_document(text, Context(filename, Path(filename).parent, session))
    return _merge([filename], [document], session)


MAX_SPEC_BYTES = 16 << 20  # a spec with its inline files is kilobytes; past this it is no spec (or /dev/zero)
STDIN = "-"


@functools.cache
def _stdin_bytes() -> bytes:
    """A spec given as `-`, read once however often the spec is loaded (build, explain, sbom)."""
    return sys.stdin.buffer.read(MAX_SPEC_BYTES + 1)


def _read(name: str, session: Session) -> str | None:
    try:
        if name == STDIN:
            data = _stdin_bytes()
        else:
            with open(name, "rb") as handle:
                data = handle.read(MAX_SPEC_BYTES + 1)
        if len(data) > MAX_SPEC_BYTES:
            message = f"more than {MAX_SPEC_BYTES >> 20} MiB: too big for a spec (put big files in `source:` files)"
            session.issues.append(SpecIssue(name, 0, 0, "", message))
            return None
        return data.decode("utf-8-sig")
    except OSError as error:
        session.issues.append(SpecIssue(name, 0, 0, "", f"cannot read the spec: {error.strerror or error}"))
    except UnicodeDecodeError as error:
        session.issues.append(SpecIssue(name, 0, 0, "", f"not UTF-8 text: {error.reason} at byte {error.start}"))
    return None


def _parse_document(text: str, ctx: Context) -> Document | None:
    try:
        root = compose_yaml(text)
    except yaml.MarkedYAMLError as error:
        ctx.session.issues.append(_syntax_issue(ctx.file, text, error))
        return None
    except yaml.YAMLError as error:  # PyYAML's reader errors carry no mark
        ctx.session.issues.append(SpecIssue(ctx.file, 0, 0, "", str(error)))
        return None
    except RecursionError:
        ctx.session.issues.append(SpecIssue(ctx.file, 0, 0, "", "nested too deeply to be a spec"))
        return None
    if root is None:
        ctx.session.warnings.append(f"{ctx.file}: the file is empty")
        return Document()
    if isinstance(root, MappingNode) and not _is_build_spec(root, ctx):
        return None
    return Record(Document).parse(root, ctx, "")


def _syntax_issue(file: str, text: str, error: yaml.MarkedYAMLError) -> SpecIssue:
    mark = error.problem_mark or error.context_mark
    if mark is not None and (error.problem or "").startswith(INDENTATION_PROBLEMS):
        explained = explain_indentation(text, mark.line + 1)
        if explained is not None:
            return SpecIssue(file, mark.line + 1, _first_column(text, mark.line), "", explained)
    message = error.problem or "invalid YAML"
    if error.context and error.context_mark is not None:
        message += f" ({error.context} started at line {error.context_mark.line + 1})"
        message += _column0_comment_hint(text, error.context_mark.line, mark.line if mark else 0)
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    return SpecIssue(file, line, column, "", message)


def _first_column(text: str, line: int) -> int:
    """The 1-based column where the 0-based `line` starts its content."""
    lines = text.splitlines()
    content = lines[line] if line < len(lines) else ""
    return len(content) - len(content.lstrip(" ")) + 1


def _column0_comment_hint(text: str, first: int, last: int) -> str:
    """A `#` at column 0 inside an indented block scalar ends the scalar: a classic trap (LinuxKit's
    own examples/static-ip.yml falls into it). Point at the line when it is the likely cause."""
    lines = text.splitlines()[first:last]
    for number, line in enumerate(lines, start=first + 1):
        if line.startswith("#"):
            return f"; line {number} starts with '#' at column 0, which ends the block above: indent it"
    return ""


_PKG_KEYS = {"image", "org", "arches", "network", "dockerfile", "buildArgs", "config", "tag", "extra-sources"}
_REGISTRY_KEYS = {"storage", "http", "proxy", "health", "log", "version"}


def _is_build_spec(root: MappingNode, ctx: Context) -> bool:
    """A mapping with none of the spec's top-level keys is some other YAML file; say so once instead
    of listing each of its keys as unknown."""
    keys = [key.value for key, _ in root.value if isinstance(key, ScalarNode)]
    if not keys or set(keys) & set(yaml_fields(Document)):
        return True
    if set(keys) & _PKG_KEYS:
        kind = " (it looks like a `linuxkit pkg` build.yml)"
    elif set(keys) & _REGISTRY_KEYS:
        kind = " (it looks like a registry configuration)"
    else:
        kind = ""
    expected = ", ".join(yaml_fields(Document))
    ctx.issue(root, "", f"not a distrokit/LinuxKit build spec{kind}: it has none of the keys {expected}")
    return False


def _merge(files: list[str], documents: Sequence[Document | None], session: Session) -> Spec:
    """Merge files as LinuxKit's AppendConfig does: kernel fields given later replace earlier ones,
    every list is appended. Service names must be unique across all files (they are containerd ids),
    and so must volume names (LinuxKit checks those only within a file; across files it is as wrong)."""
    valid = [d for d in documents if d is not None]
    for document in valid:
        if document.trust is not None:
            session.warn_at(document.trust.location, "trust", "ignored (distrokit verifies digests instead)")
    services = [(f"services[{c.index}].name", c.name, c.location) for d in valid for c in d.services]
    _check_unique(session, services, "service name")
    volumes = [(f"volumes[{i}].name", v.name, v.location) for d in valid for i, v in enumerate(d.volumes)]
    _check_unique(session, volumes, "volume name")
    files_added = tuple(f for d in valid for f in d.files)
    _warn_repeated_paths(session, files_added)
    kernel = _merge_kernel([d.kernel for d in valid if d.kernel is not None], session)
    if session.issues:
        raise InvalidSpec(session.issues)
    sections = {s: _renumber(c for d in valid for c in getattr(d, s.value)) for s in Section}
    return Spec(
        files_read=tuple(files),
        kernel=kernel,
        init=tuple(image for d in valid for image in d.init),
        onboot=sections[Section.ONBOOT],
        onshutdown=sections[Section.ONSHUTDOWN],
        services=sections[Section.SERVICES],
        files=files_added,
        volumes=tuple(v for d in valid for v in d.volumes),
        warnings=tuple(session.warnings),
    )


def _renumber(containers: Iterable[Container]) -> tuple[Container, ...]:
    """Give each container its index in the merged section (LinuxKit's NNN- prefix for onboot)."""
    return tuple(dataclasses.replace(c, index=i) for i, c in enumerate(containers))


def _check_unique(session: Session, entries: Sequence[tuple[str, str, Location]], what: str) -> None:
    first: dict[str, Location] = {}
    for path, name, location in entries:
        earlier = first.setdefault(name, location)
        if earlier is not location:
            session.issue_at(location, path, f"duplicate {what} '{name}' (first at {earlier}): names must be unique")


def _warn_repeated_paths(session: Session, files: Sequence[FileEntry]) -> None:
    first: dict[str, Location] = {}
    for entry in files:
        earlier = first.setdefault(entry.path, entry.location)
        if earlier is not entry.location and not entry.directory:
            session.warn_at(entry.location, "files.path", f"{entry.path} also given at {earlier}; this one wins")


def _merge_kernel(parts: Sequence[KernelFields], session: Session) -> Kernel | None:
    if not parts:
        return None
    given: dict[str, Any] = {}
    for part in parts:
        values = {name: getattr(part, name) for name in ("image", "cmdline", "binary", "tar", "ucode")}
        given.update({name: value for name, value in values.items() if value is not None})
    if "image" not in given:
        session.warn_at(parts[-1].location, "kernel", "no image given in any file: no kernel is built")
        return None
    # LinuxKit's defaults: an empty or missing binary means "kernel"; tar "none" (or "") means no tar.
    tar = given.get("tar", "kernel.tar")
    return Kernel(
        image=given["image"],
        cmdline=given.get("cmdline", ""),
        binary=given.get("binary") or "kernel",
        tar=None if tar in ("none", "") else tar,
        ucode=given.get("ucode") or None,
    )
