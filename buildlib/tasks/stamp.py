"""The files a finished build read and wrote, for its stamp (see buildlib.store.stamp)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..debian import archive, recipes
from ..debian import builds as component_builds
from ..lazy import lazy_module
from ..spec.refs import ImageRef
from ..store.images import Store
from .families import load_images, record_path
from .plan import Plan

if TYPE_CHECKING:  # only a build with LinuxKit package folders reads them
    from ..dockerfile import builder, buildyml
else:
    builder, buildyml = lazy_module("buildlib.dockerfile.builder"), lazy_module("buildlib.dockerfile.buildyml")


def watched_paths(plan: Plan) -> list[str]:
    """Every file whose change could make a task of the plan run: its tasks' file dependencies and
    targets, the spec files, the component folders (files and folders, so a new file shows), their
    pins and build records, and each image's name, record and blobs in the store."""
    store = plan.store
    paths: set[str] = set()
    for task in plan.tasks:
        paths.update(str(dep) for dep in task.get("file_dep", ()))
        paths.update(str(target) for target in task.get("targets", ()))
    for use in plan.uses:
        paths.update(str(path) for path in use.files)
    for folder in plan.resolver.folders.values():
        paths.update(_tree(str(folder)))
        recipe = recipes.load_recipe(folder, plan.resolver.arch)  # the pins of the build's architecture
        paths.add(str(archive.pin_path(store.root, recipe)))
        paths.add(str(component_builds.record_path(store, recipe)))
    for folder in plan.resolver.packages.values():  # LinuxKit package folders, and those they build on
        for package in builder.chain(buildyml.load_package(folder)):
            for folder_read in (package.folder, *(source for source, _ in package.extra_sources)):
                paths.update(_tree(str(folder_read)))
            paths.add(str(builder.package_record(store, package, plan.resolver.arch)))
    for ref in plan.refs:
        paths.add(str(record_path(store, ref)))
        paths.update(_image_paths(store, ref))
    return sorted(paths)


def _tree(folder: str) -> Iterator[str]:
    for top, dirs, files in os.walk(folder):
        yield top
        yield from (os.path.join(top, name) for name in files + dirs)


def _image_paths(store: Store, ref: str) -> list[str]:
    parsed = ImageRef.parse(ref)
    paths = [str(store._ref_path(parsed))] if not parsed.digest else []  # the file naming its manifest
    image = load_images(store, [ref])[ref]
    digests = [image.manifest_digest, image.config_digest, *(layer.digest for layer in image.layers)]
    return paths + [str(store.blob_path(digest)) for digest in digests]
