"""An image's history made to agree with its layers, before the image leaves buildah.

Images that record no history (our component images, many built without Docker) are valid OCI, and
buildah builds on them, but it writes history only for its own steps: the image it gives lists fewer
non-empty history entries than it has layers, and buildah itself then refuses to build on *that*
image ("history lists 2 non-empty layers, but we have 3 layers on disk"). So a package built on one
could not be the base of another. We prepend one entry per unrecorded layer, stamped with the build
epoch, and write the config, manifest and index of the OCI layout again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..fsutil import canonical_json, write_bytes_atomic

UNRECORDED = "distrokit: a base layer its image recorded no history for"


def complete_history(config: dict[str, Any], created: str) -> dict[str, Any]:
    """`config` with an entry for each layer its history leaves out, first (the base's layers are first)."""
    history = list(config.get("history") or [])
    layers = len(config.get("rootfs", {}).get("diff_ids", []))
    missing = layers - sum(1 for entry in history if not entry.get("empty_layer"))
    if missing <= 0:
        return config
    added = [{"created": created, "created_by": UNRECORDED} for _ in range(missing)]
    return {**config, "history": added + history}


def fix_layout(layout: Path, created: str) -> None:
    """Rewrite the one image of the OCI layout at `layout` with its history completed (if it lacks any)."""
    index = json.loads((layout / "index.json").read_text())
    entry = index["manifests"][0]
    manifest = json.loads(_blob(layout, entry["digest"]).read_bytes())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_bytes())
    fixed = complete_history(config, created)
    if fixed is config:
        return
    config_digest, config_size = _put(layout, canonical_json(fixed))
    manifest["config"] = {**manifest["config"], "digest": config_digest, "size": config_size}
    manifest_digest, manifest_size = _put(layout, canonical_json(manifest))
    index["manifests"][0] = {**entry, "digest": manifest_digest, "size": manifest_size}
    write_bytes_atomic(layout / "index.json", json.dumps(index, separators=(",", ":")).encode())


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.partition(":")[2]


def _put(layout: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    write_bytes_atomic(_blob(layout, digest), data)
    return digest, len(data)
