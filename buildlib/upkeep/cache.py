"""What is in the store, how big it is, who uses it, and garbage collection.

`ls` lists the named images with their size, last use and the specs that use them; `du` sums the
store by area; `gc` removes what nothing refers to; `rm` drops a name; `export` and `import` move
one image to and from an `oci-archive` (or `docker-archive`) file.

What `gc` keeps (its roots):
- everything a usage record (`uses/<spec>.json`, written by every successful build) names: the
  spec's image blobs, layer indexes and uncompressed layer copies, segments, and its `build/<spec>/`
  pointer files. A record whose spec files are all gone is stale: gc deletes it first, and it is no root.
- the blobs (manifest, config, layers) of every name under `refs/`: a name the user pulled, built or
  imported stays whole until `cache rm` drops it, so a name never points at a half-collected image.
  Derived data of such an image (layer indexes and copies) is not kept for it; builds recreate it.
- the kernel binaries in `kernels/` that a kept spec's `build/<spec>/kernel.ref` names.
- `debs/`, `tools/` (GRUB's modules for another architecture, unpacked from a .deb in debs/, and the
  host tools' versions component builds remember), `doit.db`
  and the lock: gc never touches them; of the package pins in `components/`,
  those of recipes that no longer exist (as they were) go when the CLI names the recipes there are.
Everything else (blobs no name or record reaches, layer files and segments no record names,
`build/<name>/` folders with no record) is garbage; leftover `.*.tmp` files of killed writes
go once their process is gone (outside `debs/`, which stores may share), and so do the scratch folders
of killed builds under `tmp/` (buildah's storage, a component's tree), which taking the lock removes.
Without `keep` all garbage goes; with `keep`
it goes least recently used first (a file's mtime is its last use: writing a usage record stamps
what it names), and gc stops once the store, as `du` totals it, is at most `keep` bytes.
Afterwards gc removes what pointed at something it removed (a layer index whose tar is gone, an
image record or a LinuxKit package's build record (`packages/`) whose manifest is gone, a segment
pointer whose segment is gone), so the next build
redoes exactly those steps. gc holds the store lock, so it never runs while a build does.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput, ImageNotFound
from ..fsutil import left_behind, store_lock, temp_file_owner
from ..fsutil import parse_size as parse_size  # the CLI's `--keep` reads sizes here
from ..outputs.initrd import KERNEL_POINTER, KEY_SUFFIX, segment_path
from ..spec.refs import ImageRef
from ..store import pulls
from ..store.images import Store
from ..store.usage import read_usages

AREAS = ("blobs", "layers", "segments", "kernels", "debs", "tools", "build", "components")
REF_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class ImageRow:
    """One named image: its size is the sum of its blobs; last use is its manifest's mtime."""

    name: str
    digest: str
    size: int
    last_used: float | None
    used_by: tuple[str, ...]
    complete: bool


@dataclass(frozen=True)
class AreaSize:
    area: str
    size: int
    files: int


@dataclass(frozen=True)
class DiskUsage:
    areas: tuple[AreaSize, ...]
    total: int


@dataclass(frozen=True)
class Removed:
    path: str
    size: int
    last_used: float


@dataclass(frozen=True)
class GcReport:
    removed: tuple[Removed, ...]
    freed: int
    size_before: int
    size_after: int
    keep: int | None
    stale_records: tuple[str, ...]


@dataclass
class _Roots:
    blobs: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    states: set[str] = field(default_factory=set)
    kernels: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Holder:
    """What keeps bytes in the store after a gc: a spec's last build, a name, or an area gc never empties."""

    what: str
    size: int


# sizes ----------------------------------------------------------------------------------------
def _walk(path: Path, seen: set[tuple[int, int]]) -> tuple[int, int, float]:
    """Bytes, file count and newest mtime under `path` (a file or a folder), each inode once."""
    size = files = 0
    newest = 0.0
    paths = [path] if not path.is_dir() else (Path(d) / f for d, _, names in os.walk(path) for f in names)
    for item in paths:
        try:
            st = item.lstat()
        except FileNotFoundError:
            continue
        newest = max(newest, st.st_mtime)
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        size, files = size + on_disk(st), files + 1
    return size, files, newest


def on_disk(st: os.stat_result) -> int:
    """The bytes a file takes on the disk: its allocated blocks, so a sparse disk image of 1 GiB with 3 MB
    written counts 3 MB (as `du` says; st_size would say 1 GiB)."""
    return st.st_blocks * 512


def du(cache: Path) -> DiskUsage:
    """Bytes per area of the store (see AREAS; anything else is "other") and the total."""
    seen: set[tuple[int, int]] = set()
    sizes = {area: (0, 0) for area in (*AREAS, "other")}
    if cache.is_dir():
        for entry in sorted(cache.iterdir()):
            area = entry.name if entry.name in AREAS else "other"
            size, files, _ = _walk(entry, seen)
            sizes[area] = (sizes[area][0] + size, sizes[area][1] + files)
    areas = tuple(AreaSize(area, size, files) for area, (size, files) in sizes.items())
    return DiskUsage(areas, sum(area.size for area in areas))


# listing --------------------------------------------------------------------------------------
def image_blobs(store: Store, manifest_digest: str) -> list[str]:
    """The digests of a stored image's manifest, config and layers (those the manifest reaches)."""
    digests = [manifest_digest]
    if not store.has_blob(manifest_digest):
        return digests
    manifest = store.read_json_blob(manifest_digest)
    for child in manifest.get("manifests") or []:
        digests += image_blobs(store, child["digest"])
    if "config" in manifest:
        digests.append(manifest["config"]["digest"])
    digests += [layer["digest"] for layer in manifest.get("layers") or []]
    return list(dict.fromkeys(digests))


def _same_ref(text: str, ref: ImageRef) -> bool:
    try:
        return str(ImageRef.parse(text)) == str(ref)
    except BadInput:
        return False


def ls(cache: Path) -> tuple[ImageRow, ...]:
    """Every named image, with the specs whose last build used it (by digest or by name)."""
    store = Store(cache)
    records = [record for _, record in read_usages(cache)]
    rows = []
    for ref, digest in store.names():
        paths = [store.blob_path(blob) for blob in image_blobs(store, digest)]
        size = sum(path.stat().st_size for path in paths if path.is_file())
        manifest = store.blob_path(digest)
        # by the reference a spec named, not by digest: two names of one image are two different names
        used_by = sorted(record.spec for record in records if any(_same_ref(use.ref, ref) for use in record.images))
        last_used = manifest.stat().st_mtime if manifest.is_file() else None
        rows.append(ImageRow(ref.familiar(), digest, size, last_used, tuple(used_by), store.lookup(ref) is not None))
    return tuple(rows)


# gc -------------------------------------------------------------------------------------------
def gc(cache: Path, keep: int | None = None, recipes: Collection[str] | None = None) -> GcReport:
    """Remove what no usage record and no name refers to; with `keep`, least recently used first
    and only until the store is at most `keep` bytes. See the module docstring for the roots.
    `recipes`: the pins (`NAME-KEY`) of the recipes that exist; the other pins go (None: keep all)."""
    store = Store(cache)
    with store_lock(cache):
        before = du(cache).total
        stale = _remove_stale_records(cache)
        removed = _remove_temp_files(cache)
        if recipes is not None:
            removed += _remove_stale_pins(cache, recipes)
        size = before - sum(item.size for item in removed)
        for candidate in sorted(_candidates(store, _roots(store)), key=lambda item: item.last_used):
            if keep is not None and size <= keep:
                break
            _remove(cache / candidate.path)
            removed.append(candidate)
            size -= candidate.size
        removed += _sweep(store)
        after = du(cache).total
    return GcReport(tuple(removed), max(before - after, 0), before, after, keep, stale)


def _remove_stale_records(cache: Path) -> tuple[str, ...]:
    stale = []
    for path, record in read_usages(cache):
        if record.stale():
            path.unlink()
            stale.append(record.spec)
    return tuple(stale)


def _remove_stale_pins(cache: Path, recipes: Collection[str]) -> list[Removed]:
    """Package pins (`components/NAME-KEY.json`) of recipes that no longer exist as they were, and their
    build records (`NAME-KEY.built.json`, see component_builds)."""
    removed = []
    folder = cache / "components"
    for pin in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        if pin.name.removesuffix(".json").removesuffix(".built") not in recipes:
            st = pin.stat()
            pin.unlink()
            removed.append(Removed(pin.relative_to(cache).as_posix(), on_disk(st), st.st_mtime))
    return removed


def holders(cache: Path, count: int = 5) -> tuple[Holder, ...]:
    """The biggest holders of what remains: each spec's last build, each name no build uses, and the
    areas gc never empties (debs/, tools/, package pins, doit's database). Shared bytes count for each holder."""
    store = Store(cache)
    found: list[Holder] = []
    used: set[str] = set()
    for _, record in read_usages(cache):
        paths = [store.blob_path(blob) for blob in record.blobs] + [cache / file for file in record.files]
        paths += [segment_path(cache, key) for key in record.segments]
        paths.append(cache / "build" / record.state_id)
        pointer = cache / "build" / record.state_id / KERNEL_POINTER
        if pointer.is_file():
            paths.append(cache / "kernels" / pointer.read_text().strip())
        found.append(Holder(f"spec {record.spec} (its last build)", _size_of(paths)))
        used.update(use.ref for use in record.images)
    for ref, digest in store.names():
        if str(ref) not in used:
            paths = [store.blob_path(blob) for blob in image_blobs(store, digest)]
            found.append(Holder(f"image {ref.familiar()} (a name: `distrokit cache rm` drops it)", _size_of(paths)))
    never = (
        ("debs", "debs/ (downloaded .deb files, never collected)"),
        ("tools", "tools/ (GRUB modules for another architecture, host tool versions, never collected)"),
        ("doit.db", "doit's database"),
    )
    for area, what in never:
        found.append(Holder(what, _size_of([cache / area])))
    return tuple(sorted((h for h in found if h.size), key=lambda h: -h.size)[:count])


def _size_of(paths: list[Path]) -> int:
    seen: set[tuple[int, int]] = set()
    return sum(_walk(path, seen)[0] for path in paths if path.exists())


def _remove_temp_files(cache: Path) -> list[Removed]:
    """Leftover `.*.tmp` files of writes that were killed. A file whose process still runs stays: a
    monorepo's `doit` writes the store without taking its lock."""
    removed = []
    for folder, dirs, names in os.walk(cache):
        dirs[:] = [name for name in dirs if Path(folder, name).relative_to(cache).as_posix() != "debs"]
        for name in names:
            if name.startswith(".") and name.endswith(".tmp") and left_behind(temp_file_owner(name)):
                path = Path(folder, name)
                st = path.lstat()
                path.unlink()
                removed.append(Removed(path.relative_to(cache).as_posix(), on_disk(st), st.st_mtime))
    return removed


def _recorded_manifest(record: Path) -> str:
    try:
        found = json.loads(record.read_bytes())
    except (OSError, ValueError):
        return ""  # unreadable: nothing it names is kept for it
    return str(found.get("manifest", "")) if isinstance(found, dict) else ""


def _roots(store: Store) -> _Roots:
    roots = _Roots()
    for _, digest in store.names():
        roots.blobs.update(_hex(blob) for blob in image_blobs(store, digest))
    for _, record in read_usages(store.root):
        roots.blobs.update(_hex(blob) for blob in record.blobs)
        roots.files.update(record.files)
        roots.states.add(record.state_id)
        pointer = store.root / "build" / record.state_id / KERNEL_POINTER
        if pointer.is_file():
            roots.kernels.add(pointer.read_text().strip())
    return roots


def _candidates(store: Store, roots: _Roots) -> Iterator[Removed]:
    """Every store entry no root names, with its size and last use."""
    seen: set[tuple[int, int]] = set()
    root = store.root
    # blobs and kernels are kept by file name, layer files and segments by their path in the store
    areas = (("blobs/sha256", roots.blobs, True), ("layers", roots.files, False), ("segments", roots.files, False))
    for area, kept, by_name in (*areas, ("kernels", roots.kernels, True)):
        folder = root / area
        for path in sorted(folder.iterdir()) if folder.is_dir() else ():
            key = path.name if by_name else path.relative_to(root).as_posix()
            key = key.removesuffix(KEY_SUFFIX)  # a segment's key file goes and stays with its segment
            if key not in kept and not path.name.startswith("."):
                size, _, newest = _walk(path, seen)
                yield Removed(path.relative_to(root).as_posix(), size, newest)
    build = root / "build"
    for path in sorted(build.iterdir()) if build.is_dir() else ():
        if path.name not in roots.states:
            size, _, newest = _walk(path, seen)
            yield Removed(path.relative_to(root).as_posix(), size, newest)


def _sweep(store: Store) -> list[Removed]:
    """Remove what points at something gone: indexes without their tar, image records without
    their manifest, segment pointers without their segment."""
    dangling = []
    for index in sorted((store.root / "layers").glob("*.index")):
        with open(index, "rb") as handle:
            header = json.loads(handle.readline() or b"{}")
        if not Path(header.get("tar", "")).is_file():
            dangling.append(index)
    for record in sorted((store.root / "images").glob("*.json")):
        if not store.has_blob(json.loads(record.read_bytes()).get("manifest", "")):
            dangling.append(record)
    # a LinuxKit package's build record (dockerfile.builder) whose image went: the next pkg build builds it
    for record in sorted((store.root / "packages").glob("*.built.json")):
        if not store.has_blob(_recorded_manifest(record)):
            dangling.append(record)
    # kernel binaries copied per spec by earlier versions: kernels/ holds one per kernel image now
    dangling += sorted((store.root / "build").glob("*/kernel-*"))
    for pointer in sorted((store.root / "build").glob("*/*.segment")):
        if not segment_path(store.root, pointer.read_text().strip()).is_file():
            dangling.append(pointer)
    removed = []
    for path in dangling:
        st = path.stat()
        path.unlink()
        removed.append(Removed(path.relative_to(store.root).as_posix(), on_disk(st), st.st_mtime))
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _hex(digest: str) -> str:
    return digest.partition(":")[2]


# names, export, import ------------------------------------------------------------------------
def rm(cache: Path, text: str) -> str:
    """Drop the name `text`; return the digest it named. Its blobs go at the next gc, unless in use."""
    ref = ImageRef.parse(text)
    store = Store(cache)
    with store_lock(cache):
        digest = dict(store.names()).get(ref)
        if digest is None or not store.remove_ref(ref):
            raise ImageNotFound(f"no image named {ref.familiar()} in {cache}: `distrokit cache ls` lists the names")
    return digest


def export_image(cache: Path, text: str, file: Path) -> str:
    """Write the stored image `text` to `file` as an oci-archive that remembers its name; return its digest."""
    ref = ImageRef.parse(text)
    target = _archive_path(file).resolve()
    store = Store(cache)
    partial = target.parent / f".{target.name}.{os.getpid()}.tmp"
    with store_lock(cache):
        digest = store.lookup(ref)
        if digest is None:
            raise ImageNotFound(f"image {ref.familiar()} is not in {cache}: `distrokit cache ls` lists what is there")
        try:
            pulls.copy_out_of_store(store, digest, f"oci-archive:{partial}:{ImageRef(ref.domain, ref.path, ref.tag)}")
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    return digest


def import_image(cache: Path, file: Path, name: str | None = None) -> tuple[ImageRef, str]:
    """Copy the image in an oci-archive or docker-archive `file` into the store under `name`
    (default: the name the archive holds); return the name and its manifest digest."""
    source = _archive_path(file).resolve()
    transport, stored_name = archive_kind(source)
    text = name or stored_name
    if not text:
        raise BadInput(f"{file} holds no image name: give one, e.g. `distrokit cache import {file} NAME`")
    ref = ImageRef.parse(text)
    with store_lock(cache):
        digest = pulls.copy_into_store(Store(cache), f"{transport}:{source}", ref)
    return ref, digest


def _archive_path(file: Path) -> Path:
    if ":" in str(file):
        raise BadInput(f"{file}: skopeo cannot name an archive whose path has a colon; rename or move it")
    return Path(file)


def archive_kind(file: Path) -> tuple[str, str | None]:
    """The skopeo transport that reads `file` (oci-archive or docker-archive) and the name it holds."""
    try:
        with tarfile.open(file) as archive:
            members = set(archive.getnames())
            if "index.json" in members and "oci-layout" in members:
                index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
                annotations = (index.get("manifests") or [{}])[0].get("annotations") or {}
                return "oci-archive", annotations.get(REF_ANNOTATION)
            if "manifest.json" in members:
                manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
                tags = (manifest or [{}])[0].get("RepoTags") or []
                return "docker-archive", tags[0] if tags else None
    except (OSError, tarfile.TarError, ValueError) as exc:
        reason = "not a tar archive" if isinstance(exc, tarfile.ReadError) else str(exc)
        raise BadInput(f"{file} cannot be read ({reason}): give an oci-archive or a docker-archive") from exc
    raise BadInput(f"{file} is a tar but neither an oci-archive nor a docker-archive: export it with skopeo first")
