"""Build component images (kernel, init, runc, ...) from Debian packages.

A component is a folder with a `component.yml` recipe: the Debian packages to take, how to lay them
out, which of their files to keep (`keep:` globs, with the ELF libraries and loader those files need,
see `elfdeps`; without it everything is kept), files to add and the image config. Packages are fetched
with `apt-get download` into the cache and unpacked with `dpkg-deb -x`; nothing is installed on the
host. The image is written straight into the store as uncompressed layers with fixed times and
owners, so the same .deb files and recipe give the same digest anywhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import re
import stat
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from .. import arches
from ..arches import DEFAULT_ARCH, arch_suffix
from ..errors import ArchiveDrift, BuildError, ComponentError
from ..fsutil import atomic_writer, read_json, sha256_file, write_json_atomic, xxh_tree
from ..spec.refs import ImageRef
from ..store.images import MEDIA_LAYER_TAR, Store
from ..store.transport import Event, EventKind, Listener, ignore
from . import apt as debarch
from . import elfdeps, kmodules
from . import recipe as recipe_schema

RECIPE = "component.yml"
IMAGE_PREFIX = "distrokit"
PACKAGES_LABEL = "org.distrokit.packages"
MOBY_LABEL = "org.mobyproject.config"
BUILDER_VERSION = "3"  # 2: the packages label names each .deb's sha256; 3: and its architecture


@dataclass(frozen=True)
class RecipeFile:
    path: str
    source: str | None = None
    contents: str | None = None
    mode: int = 0o644
    symlink: str | None = None
    directory: bool = False
    concat: str | None = None  # a glob in the unpacked packages: the file is their concatenation, sorted


@dataclass(frozen=True)
class Recipe:
    folder: Path
    name: str
    packages: tuple[str, ...] = ()
    follow: tuple[str, ...] = ()
    layout: str = "root"
    keep: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    busybox_links: bool = False
    depends: bool = True  # take the packages' dependency closure from apt
    whole_packages: bool = False  # keep every file of every package, not just what the named ones need
    files: tuple[RecipeFile, ...] = ()
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    modules: tuple[str, ...] = (kmodules.ALL,)  # the kernel layout's modules to keep (see kmodules)
    arch: str = DEFAULT_ARCH  # the Debian architecture the image is built for

    @property
    def key(self) -> str:
        """The recipe's content key; it is the image's tag (with the architecture's name beyond amd64)."""
        return _folder_key(self.folder)

    @property
    def tag(self) -> str:
        return self.key + arch_suffix(self.arch)

    @property
    def build_name(self) -> str:
        """The recipe's name with its architecture beyond amd64: names its build task and its pins."""
        return self.name + arch_suffix(self.arch)

    @property
    def pin_name(self) -> str:
        """`NAME-KEY[-ARCH]`: names the recipe's package pins and build record in the store."""
        return f"{self.name}-{self.key}{arch_suffix(self.arch)}"

    @property
    def ref(self) -> ImageRef:
        return ImageRef.parse(f"{IMAGE_PREFIX}/{self.name}:{self.tag}")


@dataclass(frozen=True)
class Package:
    """One .deb file: what apt names it, its SHA256 (hex) and, when known, its architecture and size."""

    name: str
    version: str
    filename: str
    sha256: str
    architecture: str = ""
    size: int = 0


def load_recipe(folder: Path, arch: str = DEFAULT_ARCH) -> Recipe:
    folder = Path(folder).resolve()
    recipe_file = folder / RECIPE
    if not recipe_file.is_file():
        raise ComponentError(f"{folder}: no {RECIPE} here, so it is not a distrokit component")
    return _load_recipe(folder, recipe_file.stat().st_mtime_ns, arches.normalise(arch))


@functools.lru_cache(maxsize=64)
def _load_recipe(folder: Path, mtime_ns: int, arch: str) -> Recipe:
    """Parse a recipe once per process (and again when its file changes)."""
    recipe_file = folder / RECIPE
    text = recipe_file.read_text()
    recipe_schema.check_recipe(text, recipe_file)
    raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    files = tuple(
        RecipeFile(
            path=item["path"],
            source=item.get("source"),
            contents=item.get("contents"),
            mode=int(str(item.get("mode", "0755" if item.get("directory") else "0644")), 8),
            symlink=item.get("symlink"),
            directory=bool(item.get("directory", False)),
            concat=item.get("concat"),
        )
        for item in raw.get("files") or ()
    )
    return Recipe(
        folder=folder,
        name=raw.get("name") or folder.name,
        packages=arch_packages(raw, "packages", arch),
        follow=arch_packages(raw, "follow", arch),
        layout=raw.get("layout", "root"),
        keep=tuple(raw.get("keep") or ()),
        exclude=tuple(raw.get("exclude") or ()),
        busybox_links=bool(raw.get("busybox-links", False)),
        depends=bool(raw.get("depends", True)),
        whole_packages=bool(raw.get("whole-packages", False)),
        files=files,
        config=dict(raw.get("config") or {}),
        modules=_modules_field(raw.get(f"modules-{arch}", raw.get("modules", kmodules.ALL)), recipe_file),
        arch=arch,
    )


def arch_packages(raw: Mapping[str, Any], key: str, arch: str) -> tuple[str, ...]:
    """A recipe's package list for `arch`: `KEY-ARCH:` when the recipe has one, `KEY:` otherwise, with
    `{arch}` in a name replaced by the architecture (`linux-image-cloud-{arch}`)."""
    names = raw.get(f"{key}-{arch}")
    if names is None:
        names = raw.get(key)
    return tuple(str(name).replace("{arch}", arch) for name in names or ())


def _modules_field(value: Any, recipe_file: Path) -> tuple[str, ...]:
    """`modules: all` (the default) or a list of module names and globs."""
    if value == kmodules.ALL:
        return (kmodules.ALL,)
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ComponentError(f"{recipe_file}: modules: give `all` or a list of module names or globs, e.g. [virtio*]")
    return tuple(value)


_FOLDER_KEYS: dict[Path, tuple[tuple[tuple[str, int, int, int, int], ...], str]] = {}


def _folder_key(folder: Path) -> str:
    """xxh_tree of a component folder, hashed again only when one of its files changes: a build asks
    for each recipe's key dozens of times."""
    signature = _folder_signature(folder)
    known = _FOLDER_KEYS.get(folder)
    if known is None or known[0] != signature:
        known = (signature, xxh_tree(folder)[:16])
        _FOLDER_KEYS[folder] = known
    return known[1]


def _folder_signature(folder: Path) -> tuple[tuple[str, int, int, int, int], ...]:
    entries = []
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            entries.append((os.path.join(top, name), st.st_mode, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(sorted(entries))


class PkgResolver:
    """Resolves `@pkg:FOLDER` to the component's image reference, remembering which folder made which."""

    def __init__(self, arch: str = DEFAULT_ARCH) -> None:
        self.folders: dict[str, Path] = {}
        self.arch = arches.normalise(arch)
        self._refs: dict[str, str] = {}  # a folder is hashed once per plan, however many specs name it

    def __call__(self, folder: Path) -> str:
        absolute = os.path.abspath(folder)
        ref = self._refs.get(absolute)
        if ref is None:
            ref = self._refs[absolute] = str(load_recipe(folder, self.arch).ref)
        self.folders[ref] = Path(folder)
        return ref


def folder_for(ref: str, component_root: Path, resolver: PkgResolver) -> Path | None:
    """The component folder that builds `ref`: from an `@pkg:` template, or components/NAME for distrokit/NAME."""
    if ref in resolver.folders:
        return resolver.folders[ref]
    parsed = ImageRef.parse(ref)
    if parsed.domain != "docker.io" or not parsed.path.startswith(IMAGE_PREFIX + "/"):
        return None
    folder = component_root / parsed.path.split("/", 1)[1]
    return folder if (folder / RECIPE).is_file() else None


def pinned_packages(cache: Path, recipe: Recipe, refresh: bool = False) -> list[Package]:
    """The .deb files this recipe was first built from; asked of apt again only on `refresh`.

    Pinning keeps builds fast (no apt query per run) and reproducible across Debian point releases. With a
    lock file the lock is the truth and this pin a cache of it (see `remember_pins`).
    """
    cached = None if refresh else cached_pins(cache, recipe)
    if cached is not None:
        return cached
    packages = resolve_packages(recipe)
    remember_pins(cache, recipe, packages)
    return packages


def pin_path(cache: Path, recipe: Recipe) -> Path:
    """The file naming the .deb files a recipe was first built from (one per architecture)."""
    return cache / "components" / f"{recipe.pin_name}.json"


def cached_pins(cache: Path, recipe: Recipe) -> list[Package] | None:
    """The .deb files the store last pinned for this recipe, or None."""
    pin = pin_path(cache, recipe)
    return [Package(**item) for item in read_json(pin)] if pin.is_file() else None


def remember_pins(cache: Path, recipe: Recipe, packages: list[Package]) -> None:
    if cached_pins(cache, recipe) != packages:
        write_json_atomic(pin_path(cache, recipe), [asdict(p) for p in packages])


# Debian packages ----------------------------------------------------------------------------
_URI_LINE = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) SHA256:(?P<sha>[0-9a-f]{64})$")


def resolve_packages(recipe: Recipe) -> list[Package]:
    """Ask apt which .deb files the recipe's packages are now (nothing is downloaded): the named packages
    with their dependency closure as apt's own resolver finds it for an empty system, unless the recipe
    says `depends: false`; `follow:` adds a meta package's direct dependencies. All for the recipe's
    architecture (see debarch)."""
    names = list(recipe.packages)
    if names and recipe.depends:
        names = dependency_closure(names, f"{recipe.folder}: apt cannot install {names}", recipe.arch)
    names += [dep for meta in recipe.follow for dep in _depends(meta, recipe.arch)]
    if not names:
        return []
    return print_uris(names, f"{recipe.folder}: apt cannot find {names}", recipe.arch)


def dependency_closure(names: list[str], failure: str, arch: str = DEFAULT_ARCH) -> list[str]:
    """`names` and everything they depend on (no recommends), as NAME=VERSION, from apt's resolver run
    against an empty package database: what a bare system would need, whatever the host has installed."""
    import sh

    with tempfile.TemporaryDirectory(prefix="distrokit-apt-") as state:
        (Path(state) / "status").touch()
        (Path(state) / "archives" / "partial").mkdir(parents=True)
        options = [
            *debarch.apt_options(arch),  # the empty status file and archives folder after it win over its own
            f"-oDir::State::status={state}/status",
            f"-oDir::Cache::archives={state}/archives",
            "-oDebug::NoLocking=1",
            "-oAPT::Install-Recommends=false",
            "-oAPT::Install-Suggests=false",
        ]
        try:
            output = str(sh.Command("apt-get")(*options, "install", "--print-uris", "-qq", *names))
        except sh.ErrorReturnCode as exc:
            detail = exc.stderr.decode(errors="replace").strip().splitlines()
            raise ComponentError(f"{failure}: {detail[-1] if detail else exc} (run `apt-get update` first)") from exc
    requests = []
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("'") and parts[1].endswith(".deb"):
            name, version, _ = parts[1].removesuffix(".deb").split("_", 2)
            requests.append(f"{name}={unquote(version)}")
    return sorted(set(requests))


def library_provider(soname: str) -> str | None:
    """The Debian package that ships a library, for a recipe that lacks it: the host's dpkg knows the
    packages installed here; otherwise Debian's naming rule (libfoo.so.6 is in libfoo6, libfoo2.so.0 in
    libfoo2-0), checked against apt's index."""
    import sh

    try:
        owner = str(sh.Command("dpkg")("-S", f"*/{soname}")).splitlines()[0].split(":")[0]
        return owner
    except (sh.ErrorReturnCode, sh.CommandNotFound, IndexError):
        pass
    base, _, version = soname.partition(".so.")
    if not version:
        return None
    candidate = base + ("-" if base[-1].isdigit() else "") + version.split(".")[0]
    try:
        sh.Command("apt-cache")("show", "--no-all-versions", candidate)
    except (sh.ErrorReturnCode, sh.CommandNotFound):
        return None
    return candidate


def print_uris(requests: list[str], failure: str, arch: str = DEFAULT_ARCH) -> list[Package]:
    """The .deb files apt would download for `requests` (NAME or NAME=VERSION), sorted by name."""
    import sh  # imported late: it costs a no-change build a tenth of a second

    try:
        output = sh.Command("apt-get")(*debarch.apt_options(arch), "download", "--print-uris", *requests)
    except sh.ErrorReturnCode as exc:
        detail = exc.stderr.decode(errors="replace").strip().splitlines()
        raise ComponentError(f"{failure}: {detail[-1] if detail else exc} (run `apt-get update` first)") from exc
    packages = []
    for line in str(output).splitlines():
        match = _URI_LINE.match(line.strip())
        if match:
            name, version, arch = match["file"].removesuffix(".deb").split("_", 2)
            version = version.replace("%3a", ":")
            packages.append(Package(name, version, match["file"], match["sha"], arch, int(match["size"])))
    return sorted(packages, key=lambda p: p.name)


def describe_pinned(recipe: Recipe, pinned: list[Package]) -> list[Package]:
    """The pinned .deb files as the archive serves them now (with size and architecture); ArchiveDrift when
    the archive no longer serves one of them, or serves other bytes under its name and version."""
    if not pinned:
        return []
    requests = [f"{p.name}={p.version}" for p in pinned]
    try:
        failure = f"{recipe.folder}: apt cannot find {requests}"
        served = {p.name: p for p in print_uris(requests, failure, recipe.arch)}
    except ComponentError as exc:
        missing = pinned[0]
        for package in pinned:
            if package.name in str(exc) or package.version in str(exc):
                missing = package
                break
        raise drift_error(recipe, missing, "no longer serves") from exc
    for package in pinned:
        now = served.get(package.name)
        if now is None or now.version != package.version:
            raise drift_error(recipe, package, "no longer serves")
        if now.sha256 != package.sha256:
            raise drift_error(recipe, package, f"serves other bytes (sha256 {now.sha256[:16]}) for")
    return [served[p.name] for p in pinned]


def drift_error(recipe: Recipe, package: Package, what: str) -> ArchiveDrift:
    """The error for a pinned .deb the archive cannot give: what, and the two ways forward."""
    return ArchiveDrift(
        f"component {recipe.build_name}: the Debian archive {what} {package.name} {package.version} "
        f"(pinned sha256 {package.sha256[:16]}): import the component image built from it "
        f"(`distrokit cache import FILE {recipe.ref.familiar()}`, FILE from `distrokit cache export` "
        f"where it was built or pulled), or pin what the archive has now with "
        f"`distrokit lock --update {recipe.build_name}`"
    )


def _depends(meta: str, arch: str = DEFAULT_ARCH) -> list[str]:
    import sh

    try:
        output = str(sh.Command("apt-cache")(*debarch.apt_options(arch), "depends", "--important", meta))
    except sh.ErrorReturnCode as exc:
        raise ComponentError(f"apt-cache knows no package {meta!r} (run `apt-get update` first)") from exc
    return [line.split(":", 1)[1].strip() for line in output.splitlines() if line.strip().startswith("Depends:")]


def fetch_package(store: Store, package: Package, listener: Listener = ignore, arch: str = DEFAULT_ARCH) -> Path:
    """The .deb file in the cache, downloaded (`apt-get download NAME=VERSION`) and checked against its
    pinned SHA256 when missing; PackageUnavailable when the archive cannot give those bytes. `listener` hears
    the download's start, the bytes so far and its end, as it hears a pull's."""
    import sh

    target = store.root / "debs" / package.filename
    if target.is_file() and sha256_file(target) == "sha256:" + package.sha256:
        return target
    with store.tempdir(f"deb-{package.name}-") as workdir:
        started = time.monotonic()
        listener(Event(EventKind.START, package.filename))
        try:
            options = debarch.apt_options(arch)
            with _reporting_size(workdir, package.filename, listener):
                sh.Command("apt-get")(*options, "download", f"{package.name}={package.version}", _cwd=str(workdir))
        except sh.ErrorReturnCode as exc:
            raise PackageUnavailable(package, "no longer serves") from exc
        downloaded = workdir / package.filename
        if not downloaded.is_file():
            raise PackageUnavailable(package, "no longer serves")
        actual = sha256_file(downloaded).removeprefix("sha256:")
        if actual != package.sha256:
            raise PackageUnavailable(package, f"serves other bytes (sha256 {actual[:16]}) for")
        target.parent.mkdir(parents=True, exist_ok=True)
        size = downloaded.stat().st_size
        downloaded.replace(target)
    listener(Event(EventKind.DONE, package.filename, size, seconds=time.monotonic() - started))
    return target


@contextlib.contextmanager
def _reporting_size(folder: Path, name: str, listener: Listener) -> Iterator[None]:
    """While the block runs, tell `listener` every quarter second how many bytes `folder` holds."""
    if listener is ignore:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.25):
            try:
                landed = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
            except OSError:  # apt renamed a file between the listing and the stat
                continue
            listener(Event(EventKind.PROGRESS, name, landed))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


class PackageUnavailable(Exception):
    """A pinned .deb the archive did not give (internal: `build` turns it into ArchiveDrift)."""

    def __init__(self, package: Package, what: str) -> None:
        super().__init__(f"{what} {package.name} {package.version}")
        self.package = package
        self.what = what


# image assembly -----------------------------------------------------------------------------
def build(store: Store, recipe: Recipe, packages: list[Package], listener: Listener = ignore) -> str:
    """Build the component image into the store under `recipe.ref`; return its manifest digest.
    `listener` hears the .deb downloads."""
    import sh

    try:
        debs = [fetch_package(store, package, listener, recipe.arch) for package in packages]
    except PackageUnavailable as exc:
        imported = _imported_image(store, recipe, packages)
        if imported is not None:
            return imported
        raise drift_error(recipe, exc.package, exc.what) from None
    with store.tempdir(f"component-{recipe.name}-") as work:
        root = work / "root"
        root.mkdir()
        for deb in debs:
            sh.Command("dpkg-deb")("-x", str(deb), str(root), _preexec_fn=_fixed_umask)
        keep = _kept_paths(recipe, root, packages, debs)
        if keep is not None:
            elfdeps.prune(root, keep)
        for pattern in recipe.exclude:
            for doomed in sorted(root.glob(pattern), reverse=True):
                _remove(doomed)
        _add_recipe_files(recipe, root)
        if recipe.busybox_links:
            _busybox_links(root)
        layout = LAYOUTS.get(recipe.layout)
        if layout is None:
            raise ComponentError(f"{recipe.folder}: unknown layout {recipe.layout!r}; known: {sorted(LAYOUTS)}")
        image_root = layout(recipe, root, work)
        layer = work / "layer.tar"
        with atomic_writer(layer) as out:
            write_tree_tar(image_root, out)
        digest = sha256_file(layer)
        size = layer.stat().st_size
        store.put_blob_file(layer, digest)
        config = _image_config(recipe, packages, diff_id=digest)
        return store.write_image(recipe.ref, config, [(digest, size, MEDIA_LAYER_TAR)])


def _kept_paths(recipe: Recipe, root: Path, packages: list[Package], debs: list[Path]) -> set[str] | None:
    """What stays of the unpacked packages (None: everything). `keep:` globs and what they need; without
    it, every file of the packages the recipe names and the libraries those need from the dependencies."""
    if recipe.keep:
        return elfdeps.closure(root, recipe.keep, provider=library_provider)
    if recipe.whole_packages or not recipe.depends or not recipe.packages:
        return None
    named = set(recipe.packages)
    files = [
        path for package, deb in zip(packages, debs, strict=True) if package.name in named for path in _deb_files(deb)
    ]
    return elfdeps.closure(root, exact=files, provider=library_provider)


def _deb_files(deb: Path) -> list[str]:
    """The paths a .deb unpacks: its files and links, and its folders that hold nothing of it."""
    import sh

    lines = str(sh.Command("dpkg-deb")("-c", str(deb))).splitlines()
    paths = []
    for line in lines:
        name = line.split(None, 5)[5].split(" -> ")[0].split(" link to ")[0]
        paths.append(name.removeprefix("./").rstrip("/"))
    entries = [p for p in paths if p]
    folders = {posixpath.dirname(p) for p in entries}
    return [p for p in entries if p not in folders]


def _imported_image(store: Store, recipe: Recipe, packages: list[Package]) -> str | None:
    """The component image already in the store (imported from a teammate) when it records exactly
    `packages`: what a build uses when the archive no longer serves them."""
    digest = store.lookup(recipe.ref)
    if digest is None:
        return None
    labels = store.image_by_digest(str(recipe.ref), digest).labels
    return digest if recorded_packages(labels) == [(p.name, p.version) for p in packages] else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.rglob("*"), reverse=True):
            child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
        path.rmdir()
    else:
        path.unlink()


def _add_recipe_files(recipe: Recipe, root: Path) -> None:
    for item in recipe.files:
        target = root / item.path.lstrip("/")
        if item.directory:
            _make_dirs(target, root)
            target.chmod(item.mode)
            continue
        _make_dirs(target.parent, root)
        if target.exists() or target.is_symlink():
            target.unlink()
        if item.symlink is not None:
            target.symlink_to(item.symlink)
            continue
        target.write_bytes(_recipe_file_data(recipe, item, root))
        target.chmod(item.mode)


def _recipe_file_data(recipe: Recipe, item: RecipeFile, root: Path) -> bytes:
    if item.source:
        return (recipe.folder / item.source).read_bytes()
    if item.concat:
        parts = sorted(root.glob(item.concat.lstrip("/")))
        if not parts:
            raise ComponentError(f"{recipe.folder}: files: {item.path}: concat {item.concat!r} matches nothing")
        return b"".join(part.read_bytes() for part in parts)
    return (item.contents or "").encode()


def _fixed_umask() -> None:
    """For the tools that write the image's files (dpkg-deb, depmod): modes must not follow the host's umask."""
    os.umask(0o022)


def _make_dirs(folder: Path, root: Path) -> None:
    """Missing folders up to `folder`, each 0755 whatever the host's umask (the image records their modes)."""
    missing = []
    while not folder.exists() and folder != root:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir()
        path.chmod(0o755)


def _busybox_links(root: Path) -> None:
    for applet in busybox_applets(root / "bin" / "busybox"):
        link = root / applet
        if link.exists() or link.is_symlink():
            continue
        _make_dirs(link.parent, root)
        link.symlink_to("/bin/busybox")


def busybox_applets(busybox: Path) -> list[str]:
    """The applets of a busybox binary with their folders (`bin/sh`, `usr/sbin/ip`, ...).

    A busybox the host can run says so itself (`--list-full`). One built for another architecture cannot
    run here, so the host's busybox gives the folders of the applets, and those whose name the foreign
    binary does not hold in its applet name table (NUL-separated names) are left out."""
    import sh

    if arches.elf_arch(busybox) in (None, arches.host_arch()):
        return str(sh.Command(str(busybox))("--list-full")).split()
    try:
        listed = str(sh.Command("busybox")("--list-full")).split()
    except sh.CommandNotFound as exc:
        raise BuildError(
            "busybox is not installed: run `apt-get install busybox-static` (scripts/setup.sh does)"
        ) from exc
    names = set(busybox.read_bytes().split(b"\0"))
    return [applet for applet in listed if applet.rsplit("/", 1)[-1].encode() in names]


def _kernel_layout(recipe: Recipe, root: Path, work: Path) -> Path:
    """LinuxKit's kernel image: /kernel (the bzImage) and /kernel.tar (the modules the recipe keeps)."""
    vmlinuz = sorted((root / "boot").glob("vmlinuz-*"))
    modules = sorted((root / "lib" / "modules").glob("*"))
    if len(vmlinuz) != 1 or len(modules) != 1:
        raise BuildError(f"expected one kernel and one modules folder, found {vmlinuz} and {modules}")
    version = modules[0].name
    kmodules.select(root, version, recipe.modules, str(recipe.folder / RECIPE), preexec=_fixed_umask)
    image = work / "kernel-image"
    (image).mkdir()
    vmlinuz[0].replace(image / "kernel")
    (image / "kernel").chmod(0o644)
    with atomic_writer(image / "kernel.tar") as out:
        write_tree_tar(root, out, only=("lib",))
    (image / "kernel.tar").chmod(0o644)
    for extra in ("System.map", "config"):
        source = root / "boot" / f"{extra}-{version}"
        if source.is_file():
            source.replace(image / extra)
    return image


def _root_layout(recipe: Recipe, root: Path, work: Path) -> Path:
    return root


LAYOUTS: dict[str, Callable[[Recipe, Path, Path], Path]] = {"root": _root_layout, "kernel": _kernel_layout}


def write_tree_tar(root: Path, out: Any, only: tuple[str, ...] = ()) -> None:
    """A deterministic tar of a folder: sorted, root-owned, time 0, no host details."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        for path in _walk_sorted(root, only):
            rel = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(rel)
            st = path.lstat()
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
                archive.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = st.st_size
                with open(path, "rb") as handle:
                    archive.addfile(info, handle)


def _walk_sorted(root: Path, only: tuple[str, ...]) -> Iterator[Path]:
    tops = [root / name for name in only] if only else sorted(root.iterdir())
    for top in tops:
        yield top
        if top.is_dir() and not top.is_symlink():
            yield from _walk_dir(top)


def _walk_dir(folder: Path) -> Iterator[Path]:
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        yield child
        if child.is_dir() and not child.is_symlink():
            yield from _walk_dir(child)


def _image_config(recipe: Recipe, packages: list[Package], diff_id: str) -> dict[str, Any]:
    wanted = recipe.config
    labels = {str(k): str(v) for k, v in (wanted.get("labels") or {}).items()}
    recorded = [[p.name, p.version, p.sha256, deb_arch(p)] for p in packages]
    labels[PACKAGES_LABEL] = json.dumps(recorded, separators=(",", ":"))
    if wanted.get("moby") is not None:
        labels[MOBY_LABEL] = json.dumps(wanted["moby"], sort_keys=True, separators=(",", ":"))
    runtime: dict[str, Any] = {"Labels": labels}
    for ours, theirs in (("entrypoint", "Entrypoint"), ("cmd", "Cmd"), ("env", "Env"), ("workdir", "WorkingDir")):
        if wanted.get(ours) is not None:
            runtime[theirs] = wanted[ours]
    return {
        "architecture": recipe.arch,
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }


def recorded_packages(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """The Debian packages (name, version) an image records in its labels; none for other images."""
    return [(item[0], item[1]) for item in json.loads(labels.get(PACKAGES_LABEL, "[]"))]


def recorded_checksums(labels: Mapping[str, str]) -> dict[str, str]:
    """The SHA256 (hex) of each .deb a component image was built from, by package name (images built
    before builder 2 record none)."""
    return {item[0]: item[2] for item in json.loads(labels.get(PACKAGES_LABEL, "[]")) if len(item) > 2}


def deb_arch(package: Package) -> str:
    """A .deb's architecture (`all` for architecture-independent ones): apt's word, else its file name's."""
    return package.architecture or package.filename.removesuffix(".deb").rsplit("_", 1)[-1]


def recorded_architectures(labels: Mapping[str, str], default: str) -> dict[str, str]:
    """The architecture of each .deb a component image was built from, by package name (images built before
    builder 3 record none: `default`, the image's own, stands in)."""
    items = json.loads(labels.get(PACKAGES_LABEL, "[]"))
    return {item[0]: item[3] if len(item) > 3 else default for item in items}


def recipe_input_key(recipe: Recipe, packages: list[Package]) -> dict[str, Any]:
    """Everything the image bytes depend on: the recipe, the exact .deb files, this builder."""
    return {
        "recipe": recipe.key,
        "packages": [[p.filename, p.sha256] for p in packages],
        "builder": BUILDER_VERSION,
    }
