"""Which files of an unpacked tree a set of programs needs: the programs, their ELF libraries, the loader.

A component recipe's `keep:` names the files it wants from its Debian packages (globs, relative to the
root); `closure` adds, for every dynamic ELF file among them, the libraries it names (DT_NEEDED, found
in the usual library folders of the same tree) and its program interpreter, recursively, following
symlinks to the files they point at. readelf (binutils) reads the ELF headers.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from .. import arches
from ..errors import BuildError, ComponentError

LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib")
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(?P<name>[^\]]+)\]")
_INTERP = re.compile(r"Requesting program interpreter: (?P<path>[^\]]+)\]")
ELF_MAGIC = b"\x7fELF"


# A library no kept package provides: (who needs it, its soname).
Missing = tuple[str, str]
Provider = Callable[[str], "str | None"]


def closure(
    root: Path, patterns: tuple[str, ...] = (), exact: Iterable[str] = (), provider: Provider | None = None
) -> set[str]:
    """Root-relative paths to keep: what `patterns` match and the `exact` paths, plus every library and
    link they need. Every library that cannot be found is named at once, with the Debian package that
    `provider` says ships it, so one run of a recipe tells all that is missing."""
    wanted = list(exact)
    for pattern in patterns:
        matches = sorted(root.glob(pattern.lstrip("/")))
        if not matches:
            raise ComponentError(f"keep: {pattern!r} matches nothing in the unpacked packages; fix the recipe")
        wanted += [m.relative_to(root).as_posix() for m in matches]
    keep: set[str] = set()
    missing: list[Missing] = []
    while wanted:  # in rounds: the ELF files a round finds are read by one readelf
        found: list[str] = []
        elves: list[str] = []
        for rel in wanted:
            if rel in keep:
                continue
            path = root / rel
            if not path.is_symlink() and not path.exists():
                continue  # a link out of the packages (e.g. to /etc/alternatives): nothing of ours to keep
            keep.add(rel)
            if path.is_symlink():
                found.append(_link_target(root, rel))
            elif path.is_dir():
                found += [p.relative_to(root).as_posix() for p in path.rglob("*")]
            elif _is_elf(path):
                elves.append(rel)
        wanted = found + _needs(root, elves, missing)
    if missing:
        raise ComponentError(_missing_message(missing, provider))
    return keep


def _missing_message(missing: list[Missing], provider: Provider | None) -> str:
    names = sorted({name for _, name in missing})
    packages = {name: provider(name) if provider is not None else None for name in names}  # asked once each
    lines = []
    for needer, name in sorted(set(missing)):
        package = packages[name]
        lines.append(f"{needer} needs {name}" + (f" (Debian package {package})" if package else " (no package known)"))
    named = sorted({package for package in packages.values() if package})
    advice = f"add {', '.join(named)} to the recipe's packages" if named else "add their packages to the recipe"
    return "missing libraries, " + advice + ":\n" + "\n".join(lines)


def _link_target(root: Path, rel: str) -> str:
    target = os.readlink(root / rel)
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(rel), target)
    return posixpath.normpath(joined).lstrip("/")


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == ELF_MAGIC


_READELF_BATCH = 200  # files a readelf reads at once: a process for each cost 25 ms, 300 of them for a base image


def _needs(root: Path, rels: list[str], missing: list[Missing]) -> list[str]:
    """The loaders and libraries the ELF files `rels` name, as root-relative paths; a library not in
    the tree goes to `missing`."""
    found = []
    for start in range(0, len(rels), _READELF_BATCH):
        batch = rels[start : start + _READELF_BATCH]
        for rel, text in zip(batch, _readelf(root, batch), strict=True):
            found += [m["path"].lstrip("/") for m in _INTERP.finditer(text)]
            arch = arches.elf_arch(root / rel)  # an arm64 program's libraries are in the aarch64 folders
            for match in _NEEDED.finditer(text):
                library = _find_library(root, match["name"], arch)
                if library is None:
                    missing.append((rel, match["name"]))
                else:
                    found.append(library)
    return found


def _readelf(root: Path, rels: list[str]) -> list[str]:
    """What `readelf -d -l` says of each file, in their order, from one readelf for them all."""
    import sh  # imported late: it costs every command that loads components a tenth of a second

    paths = [str(root / rel) for rel in rels]
    try:
        text = str(sh.Command("readelf")("-d", "-l", "-W", *paths))
    except sh.CommandNotFound as exc:
        raise BuildError("readelf is not installed: run `apt-get install binutils` (scripts/setup.sh does)") from exc
    except sh.ErrorReturnCode as exc:
        if len(rels) > 1:  # one at a time, so the error names the file readelf cannot read
            return [said for rel in rels for said in _readelf(root, [rel])]
        raise BuildError(f"readelf cannot read {rels[0]}: {exc.stderr.decode(errors='replace')[-200:]}") from exc
    if len(paths) == 1:
        return [text]  # readelf heads a file's part with "File: PATH" only when it reads several
    starts, position = [], 0
    for path in paths:
        start = text.find(f"File: {path}\n", position)
        if start < 0:
            raise BuildError(f"readelf said nothing of {path}")
        starts.append(start)
        position = start + 1
    return [text[start:end] for start, end in zip(starts, [*starts[1:], len(text)], strict=True)]


def library_dirs(arch: str | None) -> tuple[str, ...]:
    """The folders the loader of `arch` searches (Debian's multiarch folders first); amd64's by default."""
    if arch is None or arch == "amd64":
        return LIBRARY_DIRS
    multiarch = arches.triplet(arch)
    return (f"lib/{multiarch}", f"usr/lib/{multiarch}", "lib64", "usr/lib64", "lib", "usr/lib")


def _find_library(root: Path, name: str, arch: str | None = None) -> str | None:
    for folder in library_dirs(arch):
        candidate = posixpath.join(folder, name)
        if (root / candidate).exists() or (root / candidate).is_symlink():
            return candidate
    return None


def prune(root: Path, keep: set[str]) -> None:
    """Remove everything under `root` that is neither kept nor a parent folder of something kept."""
    parents = set()
    for kept in keep:
        while kept := posixpath.dirname(kept):
            parents.add(kept)
    for path in sorted(root.rglob("*"), reverse=True):
        rel = path.relative_to(root).as_posix()
        if rel in keep or rel in parents:
            continue
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
