"""Stage 3, Dockerfile packages: LinuxKit's package folders (build.yml + Dockerfile) built into the store.

Takes a LinuxKit package folder and gives an image in the store: build.yml checked as a spec is
(file:line for every unknown key), the tag LinuxKit would give it, every FROM image resolved through
the store, and the Dockerfile built by buildah (no daemon) in a throw-away storage under the store.
Imports `spec` (build.yml is checked like a spec) and `store`; never `debian`, `rootfs`, `outputs`,
`guest` or `tasks`.

Whether a folder is a package is told here, so a build that has none never loads the builder.
"""

from pathlib import Path

BUILD_YML = "build.yml"


def is_package_folder(folder: Path) -> bool:
    return (Path(folder) / BUILD_YML).is_file()
