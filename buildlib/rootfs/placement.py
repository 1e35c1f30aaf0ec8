"""Where containers, their images and volumes go in the root, as LinuxKit lays them out.

- A container's bundle is containers/onboot/NNN-name, containers/onshutdown/NNN-name or
  containers/services/name, with config.json and runtime.json. A read-only container's image is
  in rootfs/; any other's in lower/, with empty tmp/ and rootfs/ for the overlay its runtime.json sets up.
- An image used by several containers is stored once, in the bundle of the first of them (LinuxKit's
  order: onboot, onshutdown, services); the others' runtime.json mount it from there, as LinuxKit does.
  The image tree is its own part, apart from the bundle, so changing a container's settings rewrites
  only its few small files, and changing its image only that image's part and the bundles using it.
- A volume is containers/volumes/NAME with lower/ (empty, the image's files, or with `format: oci` the
  image as an OCI layout), merged/ and, unless the volume is `readonly`, tmp/: LinuxKit's sign for the
  init, which at boot mounts merged/ as an overlay of lower/ with a tmpfs upper in tmp/, or, without
  tmp/, as lower/ read-only (components/init/libexec/volumes).

Container images get LinuxKit's touches: /dev, /dev/pts, /dev/shm, /etc, /proc and /sys exist, /etc/mtab
links to /proc/mounts, /etc/hosts and /etc/resolv.conf have fixed contents, and /etc/hostname,
/dev/console, /.dockerenv and /Dockerfile are left out. A volume's image in lower/ gets the touches
LinuxKit gives an init image (and a volume's): the same, except that /etc/resolv.conf is a symlink to
/run/resolvconf/resolv.conf.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from ..epoch import build_epoch
from ..errors import BadInput, BuildError
from ..spec.model import Container, Section, Spec, Volume
from ..spec.refs import ImageRef
from ..store.images import MEDIA_MANIFEST, Image, Store, layout_files
from . import bundles
from .layers import DIR, FILE, SYMLINK, WHITEOUT, Entry
from .tree import Tree, dir_entry, file_entry, merged_image_tree

CONTAINERS_DIR = "containers"
HOSTS = (
    "127.0.0.1       localhost\n::1     localhost ip6-localhost ip6-loopback\nfe00::0 ip6-localnet\n"
    "ff00::0 ip6-mcastprefix\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
)
RESOLV_CONF = "\n# no resolv.conf configured\n"
RESOLV_CONF_LINK = "/run/resolvconf/resolv.conf"  # LinuxKit's resolv.conf in init and volume images
_LEFT_OUT = (".dockerenv", "Dockerfile", "dev/console", "etc/hostname")
_MOUNTPOINTS = ("dev", "dev/pts", "dev/shm", "etc", "proc", "sys")


@dataclass(frozen=True)
class Slot:
    """A container's place: its bundle folder, and the container whose bundle holds its image."""

    container: Container
    prefix: str
    owner: Container
    owner_prefix: str

    @property
    def owns_image(self) -> bool:
        return self.owner is self.container

    def key(self) -> str:
        return f"{self.container.section.value}/{self.container.index}"


def bundle_dir(container: Container) -> str:
    name = container.name if container.section == Section.SERVICES else f"{container.index:03d}-{container.name}"
    return posixpath.join(CONTAINERS_DIR, container.section.value, name)


def volume_dir(volume: Volume) -> str:
    return posixpath.join(CONTAINERS_DIR, "volumes", volume.name)


def slots(spec: Spec) -> tuple[Slot, ...]:
    """Every container's slot; the first container of each image (by its normalised name) owns it."""
    owners: dict[str, Container] = {}
    out = []
    for container in spec.containers():
        owner = owners.setdefault(str(ImageRef.parse(container.image)), container)
        out.append(Slot(container, bundle_dir(container), owner, bundle_dir(owner)))
    return tuple(out)


def find_slot(spec: Spec, key: str) -> Slot:
    for slot in slots(spec):
        if slot.key() == key:
            return slot
    raise BuildError(f"no container {key} in the spec")


def find_volume(spec: Spec, name: str) -> Volume:
    for volume in spec.volumes:
        if volume.name == name:
            return volume
    raise BuildError(f"no volume {name} in the spec")


def image_root(slot: Slot, image: Image) -> str:
    """Where the slot's image tree is: its owner's rootfs/ when the owner is read-only, else lower/."""
    label = bundles.image_defaults(image).label
    return posixpath.join(slot.owner_prefix, "rootfs" if bundles.readonly_of(slot.owner, label) else "lower")


# content keys -------------------------------------------------------------------------------
def image_fragment(slot: Slot) -> object:
    """What an image part reads besides the image record: where it goes."""
    return ["image", slot.owner.image, slot.owner_prefix, slot.owner.readonly]


def bundle_fragment(spec: Spec, slot: Slot) -> object:
    """What a bundle part reads besides the image record: the container, its place, the owner's
    readonly (it decides where the image is), every container id (the image's label may name one as
    uid or gid; bundles are small, so a renamed container may rewrite them all) and the volumes the
    container names."""
    container = slot.container
    ids = [list(pair) for pair in bundles.context_of(spec).ids]
    text = " ".join([*(container.binds or ()), *(container.binds_add or ())])
    text += " ".join(m.source or "" for m in container.mounts or ())
    volumes = [v.to_dict() for v in spec.volumes if v.name in text]
    return ["bundle", container.to_dict(), slot.prefix, slot.owner_prefix, slot.owner.readonly, ids, volumes]


# trees --------------------------------------------------------------------------------------
def container_image_tree(store: Store, image: Image, resolv_link: str | None = None) -> Tree:
    """The image's merged layers with LinuxKit's touches for a container root; with `resolv_link`,
    /etc/resolv.conf is a symlink there (as LinuxKit makes it in init and volume images)."""
    tree = merged_image_tree(store, image, image.ref)
    tree.apply_layer([Entry(path, WHITEOUT) for path in _LEFT_OUT], image.ref)
    for path in _MOUNTPOINTS:
        existing = tree.get(path)
        if existing is None or existing.kind != DIR:
            tree.add(dir_entry(path))
    if tree.get("etc/mtab") is None:
        tree.add(Entry("etc/mtab", SYMLINK, mode=0o777, mtime=build_epoch(), link="/proc/mounts"))
    if resolv_link is not None:
        tree.add(Entry("etc/resolv.conf", SYMLINK, mode=0o777, mtime=build_epoch(), link=resolv_link))
    for path, text in (("etc/hosts", HOSTS), ("etc/resolv.conf", RESOLV_CONF)):
        if path in tree and resolv_link is not None and path == "etc/resolv.conf":
            continue
        old = tree.get(path)
        keep = old if old is not None and old.kind == FILE else None
        mode, uid, gid = (keep.mode, keep.uid, keep.gid) if keep else (0o644, 0, 0)
        tree.add(file_entry(path, text.encode(), mode=mode, uid=uid, gid=gid))
    return tree


def image_tree(store: Store, spec: Spec, key: str, images: Mapping[str, Image]) -> Tree:
    slot = find_slot(spec, key)
    image = images[slot.container.image]
    root = image_root(slot, image)
    moved = container_image_tree(store, image).relocated(root, f"image-{key}")
    moved.add(dir_entry(root))  # the image's own root has no entry in its layers
    return moved


def bundle_tree(spec: Spec, key: str, images: Mapping[str, Image]) -> Tree:
    """config.json and runtime.json, and the empty folders the bundle mounts onto."""
    slot = find_slot(spec, key)
    image = images[slot.container.image]
    context = bundles.context_of(spec)
    bundle = bundles.make_bundle(
        slot.container, bundles.image_defaults(image), context, slot.prefix, image_root(slot, image)
    )
    tree = Tree(f"bundle-{key}")
    tree.add(dir_entry(slot.prefix))
    if not bundle.readonly:
        tree.add(dir_entry(posixpath.join(slot.prefix, "tmp")))
    if not bundle.readonly or not slot.owns_image:
        tree.add(dir_entry(posixpath.join(slot.prefix, "rootfs")))
    tree.add(file_entry(posixpath.join(slot.prefix, "config.json"), bundle.config_json))
    tree.add(file_entry(posixpath.join(slot.prefix, "runtime.json"), bundle.runtime_json))
    return tree


def volume_tree(store: Store, spec: Spec, name: str, images: Mapping[str, Image]) -> Tree:
    """A volume: lower/ (empty, or the image's files as they are), merged/, and tmp/ for the writable
    overlay unless the volume is read-only."""
    volume = find_volume(spec, name)
    base = volume_dir(volume)
    lower = posixpath.join(base, "lower")
    tree = Tree(f"volume-{name}")
    if volume.image is not None and volume.format == "oci":
        for entry in oci_layout(store, volume, images[volume.image], lower):
            tree.add(entry)
    elif volume.image is not None:
        image = images[volume.image]
        touched = container_image_tree(store, image, resolv_link=RESOLV_CONF_LINK)
        tree = touched.relocated(lower, f"volume-{name}")
    folders = [base, lower, posixpath.join(base, "merged")]
    if not volume.readonly:
        folders.append(posixpath.join(base, "tmp"))
    for path in folders:
        tree.add(dir_entry(path))
    return tree


def oci_layout(store: Store, volume: Volume, image: Image, lower: str) -> list[Entry]:
    """`format: oci`: the image as an OCI image layout (oci-layout, index.json, blobs), its blobs
    streamed from the store. The store holds one platform of an image, linux/amd64."""
    others = [p for p in volume.platforms if p not in ("linux/amd64", "amd64")]
    if others:
        raise BadInput(
            f"volume {volume.name}: platforms {', '.join(others)}: distrokit stores linux/amd64 images only; "
            "leave `platforms` out or list linux/amd64"
        )
    manifest = store.read_json_blob(image.manifest_digest)
    descriptor = {
        "mediaType": manifest.get("mediaType", MEDIA_MANIFEST),
        "digest": image.manifest_digest,
        "size": store.blob_path(image.manifest_digest).stat().st_size,
        "platform": {"architecture": image.config.get("architecture", "amd64"), "os": "linux"},
        "annotations": {"org.opencontainers.image.ref.name": image.ref},
    }
    entries = [
        file_entry(posixpath.join(lower, name), data, mode=0o644) for name, data in layout_files(descriptor).items()
    ]
    digests = dict.fromkeys([image.manifest_digest, image.config_digest, *(layer.digest for layer in image.layers)])
    for digest in digests:
        blob = store.blob_path(digest)
        path = posixpath.join(lower, "blobs", *digest.split(":", 1))
        entries.append(Entry(path, FILE, mode=0o644, mtime=build_epoch(), size=blob.stat().st_size, source=str(blob)))
    return entries
