"""Which component images are built, known from the store itself: never build one twice.

`distrokit pkg build` and the `component` tasks of `distrokit build` both come here, so an image either
of them built is up to date for the other. The store keeps, per recipe, a small record of the inputs
the image was built from (the recipe's content, the exact .deb files, the builder's version, the
host tools it runs) and the manifest it gave; an image is up to date when the record matches the
inputs now and the store still names that manifest under the recipe's reference.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from . import components
from .fsutil import read_json, write_json_atomic, xxh_value
from .images import Store
from .transport import Listener, ignore


def record_path(store: Store, recipe: components.Recipe) -> Path:
    return store.root / "components" / f"{recipe.pin_name}.built.json"  # one per architecture


# Host tools a component build runs whose output lands in the image: dpkg-deb unpacks the .debs,
# the host's busybox writes the kernel image's modules.dep.
COMPONENT_HOST_TOOLS = (("dpkg-deb", "--version"), ("busybox",))


@functools.cache
def host_tool_versions() -> dict[str, str]:
    """The first line each host tool prints about itself (asked once per process)."""
    versions = {}
    for command in COMPONENT_HOST_TOOLS:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
            text = (done.stdout or done.stderr).strip().splitlines()
            versions[command[0]] = text[0] if text else "unknown"
        except OSError:
            versions[command[0]] = "missing"
    return versions


def inputs_key(recipe: components.Recipe, packages: list[components.Package]) -> str:
    return xxh_value({**components.recipe_input_key(recipe, packages), "host tools": host_tool_versions()})


def up_to_date(store: Store, recipe: components.Recipe, packages: list[components.Package]) -> bool:
    record = record_path(store, recipe)
    if not record.is_file():
        return False
    try:
        built = read_json(record)
    except (OSError, ValueError):
        return False  # a damaged record only costs a rebuild
    if not isinstance(built, dict) or built.get("inputs") != inputs_key(recipe, packages):
        return False
    return bool(built.get("manifest")) and store.lookup(recipe.ref) == built["manifest"]


def build(
    store: Store, recipe: components.Recipe, packages: list[components.Package], listener: Listener = ignore
) -> str:
    """Build the image (`listener` hears the .deb downloads) and record what it was built from; returns
    its manifest digest."""
    digest = components.build(store, recipe, packages, listener)
    write_json_atomic(record_path(store, recipe), {"inputs": inputs_key(recipe, packages), "manifest": digest})
    return digest


def record(store: Store, recipe: components.Recipe, packages: list[components.Package]) -> None:
    """Record an image that came into the store another way (a shared build cache) as built from these inputs."""
    digest = store.lookup(recipe.ref)
    if digest is not None:
        write_json_atomic(record_path(store, recipe), {"inputs": inputs_key(recipe, packages), "manifest": digest})


def ensure(
    store: Store,
    recipe: components.Recipe,
    packages: list[components.Package],
    force: bool = False,
    listener: Listener = ignore,
) -> tuple[str, bool]:
    """The image's manifest digest, and whether it had to be built now."""
    if not force and up_to_date(store, recipe, packages):
        digest = store.lookup(recipe.ref)
        assert digest is not None
        return digest, False
    return build(store, recipe, packages, listener), True
