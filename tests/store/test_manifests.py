"""buildlib.store.manifests and the store's reading of images: malformed manifests and configs, unknown
media types, missing blobs, absurd sizes and bad labels each give one line naming the image and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from layerkit import M, store_layer

from buildlib import cli
from buildlib.errors import BadImage, BadInput, StoreError
from buildlib.fsutil import canonical_json
from buildlib.rootfs import bundles
from buildlib.spec.refs import ImageRef
from buildlib.store.images import MEDIA_CONFIG, MEDIA_MANIFEST, Store

NAME = "localhost/crafted:1"


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "cache")


def good_parts(store: Store, labels: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    layer = store_layer(store, [M("bin/x", data=b"x", mode=0o755)])
    config: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/bin/x"], "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
    }
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": "", "size": 0},
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
    }
    return manifest, config


def put(store: Store, manifest: dict[str, Any] | bytes, config: dict[str, Any] | bytes | None = None) -> str:
    if config is not None and isinstance(manifest, dict) and isinstance(manifest["config"], dict):
        data = config if isinstance(config, bytes) else canonical_json(config)
        manifest["config"]["digest"] = store.put_blob(data)
        manifest["config"]["size"] = len(data)
    digest = store.put_blob(manifest if isinstance(manifest, bytes) else canonical_json(manifest))
    store.set_ref(ImageRef.parse(NAME), digest)
    return digest


def test_a_good_image_reads(store: Store) -> None:
    manifest, config = good_parts(store)
    put(store, manifest, config)
    assert len(store.image(ImageRef.parse(NAME)).layers) == 1


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda m, c: m.update(mediaType="application/vnd.oci.image.index.v1+json"), "mediaType"),
        (lambda m, c: m.update(mediaType="text/html"), "mediaType"),
        (lambda m, c: m.update(schemaVersion=1), "schemaVersion"),
        (lambda m, c: m.update(layers={"not": "a list"}), "layers"),
        (lambda m, c: m["layers"][0].update(mediaType="application/x-evil"), r"layers\[0\].mediaType"),
        (lambda m, c: m["layers"][0].update(size=-1), r"layers\[0\].size"),
        (lambda m, c: m["layers"][0].update(size=10**30), r"layers\[0\].size"),
        (lambda m, c: m["layers"][0].update(size="12"), r"layers\[0\].size"),
        (lambda m, c: m["layers"][0].update(size=5), r"layers\[0\].size: the manifest says 5"),
        (lambda m, c: m["layers"][0].update(digest="sha256:../../etc"), r"layers\[0\].digest"),
        (lambda m, c: m["layers"][0].update(digest="md5:abc"), r"layers\[0\].digest"),
        (lambda m, c: m.update(config="nope"), "config"),
        (lambda m, c: c.update(rootfs={"diff_ids": "x"}), "rootfs.diff_ids"),
        (lambda m, c: c["rootfs"].update(diff_ids=[]), "rootfs.diff_ids: 0 layers"),
        (lambda m, c: c["config"].update(Env="PATH=/bin"), "config.Env"),
        (lambda m, c: c["config"].update(Entrypoint=[1, 2]), "config.Entrypoint"),
        (lambda m, c: c["config"].update(Labels={"a": 1}), "config.Labels"),
        (lambda m, c: c.update(config=[]), "config: must be an object"),
        (lambda m, c: c.update(architecture=7), "architecture"),
    ],
)
def test_malformed_manifests_and_configs_name_the_field(store: Store, change, field: str) -> None:
    manifest, config = good_parts(store)
    change(manifest, config)
    put(store, manifest, config)
    with pytest.raises(BadImage, match=rf"image {NAME}: {field}") as caught:
        store.image(ImageRef.parse(NAME))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("blob", [b"{not json", b"[1, 2]", b"\xff\xfe", b"{}" + b" " * (5 << 20)])
def test_a_config_that_is_no_json_object(store: Store, blob: bytes) -> None:
    manifest, _ = good_parts(store)
    put(store, manifest, blob)
    with pytest.raises(BadImage, match=f"image {NAME}: config sha256:"):
        store.image(ImageRef.parse(NAME))


def test_a_missing_blob_makes_the_image_absent(store: Store) -> None:
    manifest, config = good_parts(store)
    manifest["layers"][0]["digest"] = "sha256:" + "e" * 64
    put(store, manifest, config)
    assert store.lookup(ImageRef.parse(NAME)) is None


def test_a_flipped_bit_in_a_manifest_is_never_read(store: Store) -> None:
    manifest, config = good_parts(store)
    digest = put(store, manifest, config)
    path = store.blob_path(digest)
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    assert store.lookup(ImageRef.parse(NAME)) is None  # not complete: a pull fetches it again
    with pytest.raises(StoreError, match="does not match its digest"):
        store.image_by_digest(NAME, digest)


@pytest.mark.parametrize(
    "label, field",
    [
        ("{not json", "not valid JSON or YAML"),
        ('["a list"]', "must be a JSON object"),
        ('{"capabilities": "CAP_ALL"}', "capabilities: expected a list"),
        ('{"binds": [1]}', r"binds\[0\]: expected a string"),
        ('{"readonly": "maybe"}', "readonly"),
        ('{"pid": {"a": 1}}', "pid: expected a string"),
        ('{"name": "x"}', "name: cannot be set in an image's label"),
        ('{"nosuch": true}', "nosuch: unknown key"),
        ("x" * (2 << 20), "more than a label may hold"),
    ],
)
def test_bad_labels_name_the_image_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], label: str, field: str
) -> None:
    store = Store(tmp_path / "cache")
    manifest, config = good_parts(store, {bundles.MOBY_LABEL: label})
    put(store, manifest, config)
    spec = tmp_path / "s.yml"
    spec.write_text(f"onboot:\n  - name: c\n    image: {NAME}\n")
    code = cli.main(["--cache", str(store.root), "build", "-q", "-f", "tar", str(spec), "--dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert f"{NAME} label {bundles.MOBY_LABEL}" in err[-1] and "Traceback" not in "\n".join(err)
    import re

    assert re.search(field, err[-1])
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_build_of_a_malformed_image_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Store(tmp_path / "cache")
    manifest, config = good_parts(store)
    manifest["layers"][0]["size"] = -5
    put(store, manifest, config)
    spec = tmp_path / "s.yml"
    spec.write_text(f"onboot:\n  - name: c\n    image: {NAME}\n")
    code = cli.main(["--cache", str(store.root), "build", "-q", "-f", "tar", str(spec), "--dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and f"image {NAME}: layers[0].size" in err and "Traceback" not in err


def test_a_crafted_oci_layout_with_a_lying_size_is_refused_by_the_pull(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """skopeo itself checks sizes and digests of what it copies: nothing of the image gets a name."""
    layout = tmp_path / "layout"
    blobs = Store(layout)  # an OCI layout keeps blobs/sha256/<hex> too
    manifest, config = good_parts(blobs)
    manifest["layers"][0]["size"] += 7
    config_bytes = canonical_json(config)
    manifest["config"].update(digest=blobs.put_blob(config_bytes), size=len(config_bytes))
    manifest_bytes = canonical_json(manifest)
    digest = blobs.put_blob(manifest_bytes)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MEDIA_MANIFEST,
                "digest": digest,
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": "t"},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    cache = tmp_path / "cache"
    code = cli.main(["--cache", str(cache), "pull", "-q", f"oci:{layout}:t", "--name", NAME])
    err = capsys.readouterr().err
    assert code in (1, 2) and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert Store(cache).lookup(ImageRef.parse(NAME)) is None
    assert not list((cache / "blobs" / "sha256").iterdir())
    with pytest.raises(BadInput):
        Store(cache).image(ImageRef.parse(NAME))
