"""The task that builds a LinuxKit package folder (build.yml + Dockerfile) a spec names with `@pkg:`.

Its basename is `component`, as a recipe's is, so the image task of the ref waits for it the same way.
It is up to date by the store's own record (see dockerfile.builder), not doit's, so `pkg build` and
`build` each skip what the other built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..dockerfile import builder, buildyml
from ..store.images import Store
from ..store.transport import ignore
from .families import BuildOptions, ErrorSink, StoreCheck, pinned_manifest


def package_task_name(folder: Path) -> str:
    package = buildyml.load_package(folder)
    return f"package-{package.build_name}"


def package_task(store: Store, folder: Path, sink: ErrorSink, options: BuildOptions) -> dict[str, Any]:
    package = buildyml.load_package(folder)
    arch = options.arch

    def pin(ref: str) -> str | None:
        return pinned_manifest(options, ref)  # with a lock, FROM images are the digests it pins

    def build() -> None:
        listener = options.transfer_listener or ignore
        found = builder.resolve(store, package, arch, pull=True, network=options.network, listener=listener, pin=pin)
        assert found is not None  # with pull=True every base is resolved or an error was raised
        builder.run_build(store, found, listener)

    def built() -> bool:
        """the store's record of this package names these inputs: the folder, its args, the bases' digests"""
        return builder.up_to_date(store, builder.resolve(store, package, arch, pull=False, pin=pin))

    return {
        "basename": "component",
        "name": package_task_name(folder),
        "doc": f"build the LinuxKit package {package.org}/{package.image} with buildah",
        "actions": [sink.guard(build)],
        "uptodate": [StoreCheck(built, lambda: [])],
        "verbosity": 0,
    }
