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
from pathlib import Path

from . import debarch
from .errors import BuildError, ComponentError

LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "usr/lib64", "lib", "usr/lib")
_NEEDED = re.compile(r"\(NEEDED\)\s+Shared library: \[(?P<name>[^\]]+)\]")
_INTERP = re.compile(r"Requesting program interpreter: (?P<path>[^\]]+)\]")
ELF_MAGIC = b"\x7fELF"


def closure(root: Path, patterns: tuple[str, ...]) -> set[str]:
    """Root-relative paths to keep: what `patterns` match, plus every library and link they need."""
    wanted: list[str] = []
    for pattern in patterns:
        matches = sorted(root.glob(pattern.lstrip("/")))
        if not matches:
            raise ComponentError(f"keep: {pattern!r} matches nothing in the unpacked packages; fix the recipe")
        wanted += [m.relative_to(root).as_posix() for m in matches]
    keep: set[str] = set()
    while wanted:
        rel = wanted.pop()
        if rel in keep:
            continue
        keep.add(rel)
        path = root / rel
        if path.is_symlink():
            wanted.append(_link_target(root, rel))
        elif path.is_dir():
            wanted += [p.relative_to(root).as_posix() for p in path.rglob("*")]
        elif _is_elf(path):
            wanted += _needs(root, rel)
    return keep


def _link_target(root: Path, rel: str) -> str:
    target = os.readlink(root / rel)
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(rel), target)
    return posixpath.normpath(joined).lstrip("/")


def _is_elf(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == ELF_MAGIC


def _needs(root: Path, rel: str) -> list[str]:
    import sh  # imported late: it costs every command that loads components a tenth of a second

    try:
        text = str(sh.Command("readelf")("-d", "-l", "-W", str(root / rel)))
    except sh.CommandNotFound as exc:
        raise BuildError("readelf is not installed: run `apt-get install binutils` (scripts/setup.sh does)") from exc
    except sh.ErrorReturnCode as exc:
        raise BuildError(f"readelf cannot read {rel}: {exc.stderr.decode(errors='replace')[-200:]}") from exc
    found = [m["path"].lstrip("/") for m in _INTERP.finditer(text)]
    for match in _NEEDED.finditer(text):
        found.append(_find_library(root, rel, match["name"]))
    return found


def library_dirs(arch: str | None) -> tuple[str, ...]:
    """The folders the loader of `arch` searches (Debian's multiarch folders first); amd64's by default."""
    if arch is None or arch == "amd64":
        return LIBRARY_DIRS
    multiarch = debarch.triplet(arch)
    return (f"lib/{multiarch}", f"usr/lib/{multiarch}", "lib64", "usr/lib64", "lib", "usr/lib")


def _find_library(root: Path, needer: str, name: str) -> str:
    for folder in library_dirs(debarch.elf_arch(root / needer)):
        candidate = posixpath.join(folder, name)
        if (root / candidate).exists() or (root / candidate).is_symlink():
            return candidate
    raise ComponentError(f"{needer} needs {name}, which none of the recipe's packages provide: add its package")


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
