"""The tag LinuxKit gives a package: its tag template (`{{.Hash}}` by default) with the package's hash.

In a git work tree the hash is LinuxKit's: the tree hash of the folder at HEAD, and when the folder
has changes or untracked files, `-dirty-` and the first 7 hex digits of the SHA-256 of every file git
knows or would add under it. Outside git LinuxKit has no hash (its tag comes out `latest`); we give
the folder's content hash instead, so a changed folder never keeps the name of an older image.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

from ..errors import ComponentError
from ..fsutil import xxh_tree, xxh_value

# Go text/template as LinuxKit uses it here: `{{.Hash}}`, spaces allowed inside the braces
_HASH_ACTION = re.compile(r"\{\{-?\s*\.Hash\s*-?\}\}")
_ANY_ACTION = re.compile(r"\{\{.*?\}\}")


def render(template: str, package_hash: str) -> str:
    """The template with `{{.Hash}}` filled in; any other action is an error, as LinuxKit's template fails."""
    filled = _HASH_ACTION.sub(package_hash, template)
    stray = _ANY_ACTION.search(filled)
    if stray is not None:
        raise ComponentError(f"tag template {template!r}: {stray.group(0)} is not {{{{.Hash}}}}, the only field")
    return filled or "latest"


def package_hash(folder: Path, extra_sources: tuple[Path, ...] = ()) -> str:
    """LinuxKit's: with extra sources, the SHA-1 of the folder's tree hash followed by each source's."""
    git_hash = _git_hash(folder)
    if git_hash is None:
        return xxh_value([xxh_tree(path) for path in (folder, *extra_sources)])[:16]
    source_hashes = "".join(_tree_hash(source) or "" for source in extra_sources)
    if not source_hashes:
        return git_hash
    tree, dirty, suffix = git_hash.partition("-dirty-")
    combined = hashlib.sha1((tree + source_hashes).encode()).hexdigest()
    return combined + dirty + suffix


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=False)


def _git_hash(folder: Path) -> str | None:
    tree = _tree_hash(folder)
    if not tree:
        return None  # outside git, or not committed yet: no tree hash to name it by
    return tree + (f"-dirty-{_content_hash(folder)[:7]}" if _dirty(folder) else "")


def _tree_hash(folder: Path) -> str | None:
    """The git tree hash of `folder` at HEAD (the commit's tree for a repository's top folder)."""
    top = _git(folder, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return None
    if Path(top.stdout.strip()).resolve() == folder.resolve():
        return _git(folder, "show", "--format=%T", "-s", "HEAD").stdout.strip() or None
    listed = _git(folder, "ls-tree", "--full-tree", "HEAD", "--", str(folder.resolve())).stdout.split()
    return listed[2] if len(listed) >= 3 and listed[1] == "tree" else None


def _dirty(folder: Path) -> bool:
    changed = _git(folder, "diff", "--no-ext-diff", "--quiet", "HEAD", "--", ".").returncode != 0
    untracked = _git(folder, "ls-files", "--exclude-standard", "--others", "--", ".").stdout.strip()
    return changed or bool(untracked)


def _content_hash(folder: Path) -> str:
    """SHA-256 over the bytes of every regular file git tracks or would add under `folder`, in git's order."""
    listed = _git(folder, "ls-files").stdout + "\n" + _git(folder, "ls-files", "--exclude-standard", "--others").stdout
    digest = hashlib.sha256()
    for name in listed.strip().splitlines():
        path = folder / name
        if path.is_file() and not path.is_symlink():
            digest.update(path.read_bytes())
    return digest.hexdigest()
