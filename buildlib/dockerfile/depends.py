"""`depends.docker-images` of a build.yml: images, each by digest, saved as docker-archive tars into the
build context before the build, as LinuxKit's `docker image save` does.

LinuxKit writes them into the package folder itself (emptying a `target-dir` first); here they go into
the build context buildah reads, a copy of the folder, so the folder (and so its hash and its git
state) stays as the user left it. The images come from the store, pulled into it first when missing,
for the build's platform; their manifest digests are inputs of the build.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

from ..spec.refs import ImageRef
from ..store import pulls
from ..store.images import Store

EPOCH_MTIME = 0  # the tars' own entries carry no build time, so the same images give the same bytes


def archive_name(image: str) -> str:
    """LinuxKit's file name in a `target-dir`: the last path part of the name, `@`, the digest, `.tar`."""
    ref = ImageRef.parse(image)
    return f"{ref.path.rsplit('/', 1)[-1]}@{ref.digest}.tar"


def save_images(store: Store, images: tuple[tuple[str, str], ...], context: Path, target: str, folder: bool) -> None:
    """Write each (image, manifest digest) from the store under `target` in `context`: a folder of one tar
    each, or one tar holding them all."""
    destination = context / target
    if folder:
        if destination.is_dir():
            shutil.rmtree(destination)  # as LinuxKit: no stale tar from the folder's own copy stays
        destination.mkdir(parents=True, exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
    with store.tempdir("depends-") as work:
        parts = []
        for number, (_, digest) in enumerate(images):
            # skopeo reads a `:` in the path as the start of a name: write under a plain name, then move
            parts.append(work / f"{number}.tar")
            pulls.copy_out_of_store(store, digest, f"docker-archive:{parts[-1]}")
        if folder:
            for part, (image, _) in zip(parts, images, strict=True):
                part.replace(destination / archive_name(image))
        else:
            merge_archives(parts, destination)


def merge_archives(parts: list[Path], destination: Path) -> None:
    """Several docker-archive tars as one (as `docker save A B` writes): their files once each (layers and
    configs are named by digest), their manifest.json entries in order."""
    members: dict[str, bytes] = {}
    manifest: list[object] = []
    for part in parts:
        with tarfile.open(part) as tar:
            for member in tar:
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is None:
                    continue
                if member.name == "manifest.json":
                    manifest.extend(json.loads(extracted.read()))
                else:
                    members[member.name] = extracted.read()
    members["manifest.json"] = json.dumps(manifest, separators=(",", ":")).encode()
    with tarfile.open(destination, "w", format=tarfile.PAX_FORMAT) as out:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(members[name]), EPOCH_MTIME, 0o644
            out.addfile(info, io.BytesIO(members[name]))
