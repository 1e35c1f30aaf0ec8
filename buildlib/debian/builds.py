"""Which component images are built, known from the store itself: never build one twice.

`distrokit pkg build` and the `component` tasks of `distrokit build` both come here, so an image either
of them built is up to date for the other. The store keeps, per recipe, a small record of the inputs
the image was built from (the recipe's content, the exact .deb files, the builder's version, the
host tools it runs) and the manifest it gave; an image is up to date when the record matches the
inputs now and the store still names that manifest under the recipe's reference.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..fsutil import read_json, write_json_atomic, xxh_value
from ..lazy import lazy_module
from ..store.images import Store
from ..store.transport import Listener, ignore
from . import recipes

if TYPE_CHECKING:  # the assembler loads when a component is built, not when it is found up to date
    from . import components
else:
    components = lazy_module("buildlib.debian.components")


def record_path(store: Store, recipe: recipes.Recipe) -> Path:
    return store.root / "components" / f"{recipe.pin_name}.built.json"  # one per architecture


# Host tools a component build runs whose output lands in the image: dpkg-deb unpacks the .debs,
# the host's busybox writes the kernel image's modules.dep.
COMPONENT_HOST_TOOLS = (("dpkg-deb", "--version"), ("busybox",))


# Where the answers are remembered, beside GRUB's modules in the store's tools/ (gc never empties it).
HOST_TOOLS_RECORD = Path("tools") / "host-versions.json"


def host_tool_versions(root: Path | None = None) -> dict[str, str]:
    """The first line each host tool prints about itself. Asked once per process, and remembered in the
    store at `root` for as long as the tool's file stays the same one (an upgrade replaces the file)."""
    return dict(_host_tool_versions(root))


@functools.cache
def _host_tool_versions(root: Path | None) -> tuple[tuple[str, str], ...]:
    record = root / HOST_TOOLS_RECORD if root is not None else None
    saved = _saved_answers(record)
    answers: dict[str, dict[str, Any]] = {}
    for command in COMPONENT_HOST_TOOLS:
        name, file = command[0], _tool_file(command[0])
        known = saved.get(name)
        if file is not None and isinstance(known, dict) and known.get("file") == file:
            answers[name] = {"file": file, "version": str(known.get("version"))}
        else:
            answers[name] = {"file": file, "version": _ask(command)}
    if record is not None and answers != saved and all(answer["file"] for answer in answers.values()):
        with contextlib.suppress(OSError):  # only a memo: the next process asks the tools again
            write_json_atomic(record, answers)
    return tuple((name, answer["version"]) for name, answer in answers.items())


def _saved_answers(record: Path | None) -> dict[str, Any]:
    try:
        saved = read_json(record) if record is not None else {}
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _tool_file(name: str) -> list[Any] | None:
    """What identifies the tool's file: its real path, inode, size and times (None when it is missing)."""
    found = shutil.which(name)
    if found is None:
        return None
    real = os.path.realpath(found)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return [real, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _ask(command: tuple[str, ...]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "missing"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def inputs_key(store: Store, recipe: recipes.Recipe, packages: list[recipes.Package]) -> str:
    host_tools = host_tool_versions(store.root)
    return xxh_value({**recipes.recipe_input_key(recipe, packages), "host tools": host_tools})


def up_to_date(store: Store, recipe: recipes.Recipe, packages: list[recipes.Package]) -> bool:
    record = record_path(store, recipe)
    if not record.is_file():
        return False
    try:
        built = read_json(record)
    except (OSError, ValueError):
        return False  # a damaged record only costs a rebuild
    if not isinstance(built, dict) or built.get("inputs") != inputs_key(store, recipe, packages):
        return False
    return bool(built.get("manifest")) and store.lookup(recipe.ref) == built["manifest"]


def stored_differences(store: Store, recipe: recipes.Recipe, packages: list[recipes.Package]) -> list[str] | None:
    """How the store's image for `recipe` differs from the pinned `packages` (see components); None: no image."""
    return components.stored_differences(store, recipe, packages)


def build(store: Store, recipe: recipes.Recipe, packages: list[recipes.Package], listener: Listener = ignore) -> str:
    """Build the image (`listener` hears the .deb downloads) and record what it was built from; returns
    its manifest digest."""
    digest = components.build(store, recipe, packages, listener)
    write_json_atomic(record_path(store, recipe), {"inputs": inputs_key(store, recipe, packages), "manifest": digest})
    return digest


def record(store: Store, recipe: recipes.Recipe, packages: list[recipes.Package]) -> None:
    """Record an image that came into the store another way (a shared build cache) as built from these inputs."""
    digest = store.lookup(recipe.ref)
    if digest is not None:
        write_json_atomic(
            record_path(store, recipe), {"inputs": inputs_key(store, recipe, packages), "manifest": digest}
        )


def ensure(
    store: Store,
    recipe: recipes.Recipe,
    packages: list[recipes.Package],
    force: bool = False,
    listener: Listener = ignore,
) -> tuple[str, bool]:
    """The image's manifest digest, and whether it had to be built now."""
    if not force and up_to_date(store, recipe, packages):
        digest = store.lookup(recipe.ref)
        assert digest is not None
        return digest, False
    return build(store, recipe, packages, listener), True
