"""Unpack .deb files into one tree, several at once, with the tree that unpacking them one after
another gives.

Each `dpkg-deb -x` runs into a folder of its own (a subprocess: the threads only wait on it), then the
folders are merged into the root in the .debs' order with the rules of the tar that `dpkg-deb -x` runs
one after another: a later file or link replaces an earlier one, a later folder's mode wins over an
earlier one's, a folder replaces a file or link, and a file cannot replace a folder that holds
something. Merging renames within one file system, so it costs no copies.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import BuildError

# dpkg-deb is mostly decompression on one core: more workers than cores only fight over them.
WORKERS = max(1, min(4, os.cpu_count() or 1))


def unpack_all(
    debs: list[Path], root: Path, scratch: Path, preexec: Callable[[], None] | None = None
) -> list[list[str]]:
    """Unpack `debs` into `root` as `dpkg-deb -x` one after another in this order would; what each .deb
    holds (see `listing`), read from its own folder before the merge, so no `dpkg-deb -c` reads it again."""
    scratch.mkdir()
    folders = [scratch / f"{index:05d}" for index in range(len(debs))]
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        unpacking = [pool.submit(_unpack, deb, folder, preexec) for deb, folder in zip(debs, folders, strict=True)]
        try:
            for done in unpacking:  # in order: the first failure is the one raised
                done.result()
        except BaseException:
            # no dpkg-deb starts after one failed (or was stopped by Ctrl-C or SIGTERM): its folders
            # would be made again after the build removed them
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    listings = []
    for deb, folder in zip(debs, folders, strict=True):
        listings.append(listing(folder))
        _merge(folder, root, deb)
        folder.rmdir()
    return listings


def listing(folder: Path) -> list[str]:
    """The paths under `folder` as `dpkg-deb -c` names a .deb's (without "./"), sorted: files and links,
    and (ending in `/`) the folders that hold nothing."""
    paths: list[str] = []

    def walk(directory: str, prefix: str) -> None:
        with os.scandir(directory) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                before = len(paths)
                walk(entry.path, rel + "/")
                if len(paths) == before:
                    paths.append(rel + "/")
            else:
                paths.append(rel)

    walk(str(folder), "")
    return paths


def _unpack(deb: Path, folder: Path, preexec: Callable[[], None] | None) -> None:
    import sh

    folder.mkdir()
    try:
        sh.Command("dpkg-deb")("-x", str(deb), str(folder), _preexec_fn=preexec)
    except sh.ErrorReturnCode as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise BuildError(f"{deb.name}: dpkg-deb cannot unpack it: {detail[-1] if detail else exc}") from None


def _merge(source: Path, target: Path, deb: Path, rel: str = "") -> None:
    """Move what `source` holds into the folder `target` (emptying `source`); `rel` is where in the tree."""
    with os.scandir(source) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        _place(source / name, target / name, deb, f"{rel}/{name}")


def _place(new: Path, old: Path, deb: Path, rel: str) -> None:
    """Put `new` where `old` is, as tar extracting `new` over `old` would."""
    new_is_dir = stat.S_ISDIR(new.lstat().st_mode)
    try:
        old_is_dir = stat.S_ISDIR(old.lstat().st_mode)
    except FileNotFoundError:
        new.rename(old)
        return
    if new_is_dir and old_is_dir:
        os.chmod(old, stat.S_IMODE(new.lstat().st_mode))  # tar sets an existing folder's mode from the archive
        _merge(new, old, deb, rel)
        new.rmdir()
    elif old_is_dir:
        if any(old.iterdir()):
            raise BuildError(f"{deb.name}: cannot put a file at {rel}: an earlier package has a folder there")
        old.rmdir()
        new.rename(old)
    elif new_is_dir:
        old.unlink()  # tar does not keep a link to a folder where the archive has a folder: it makes one
        new.rename(old)
    else:
        new.replace(old)
