"""Build component images (kernel, init, runc, ...) from Debian packages.

A component is a folder with a `component.yml` recipe: the Debian packages to take, how to lay them
out, which of their files to keep (`keep:` globs, with the ELF libraries and loader those files need,
see `elfdeps`; without it everything is kept), files to add and the image config. Packages are fetched
with `apt-get download` into the cache and unpacked with `dpkg-deb -x`; nothing is installed on the
host. The image is written straight into the store as uncompressed layers with fixed times and
owners, so the same .deb files and recipe give the same digest anywhere.
"""

from __future__ import annotations

import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import arches
from ..errors import BuildError, ComponentError
from ..fsutil import atomic_writer, sha256_file
from ..store.images import MEDIA_LAYER_TAR, Store
from ..store.transport import Listener, ignore
from . import elfdeps, kmodules, maintainer
from .archive import PackageUnavailable, drift_error, fetch_packages, library_provider
from .recipes import MOBY_LABEL, PACKAGES_LABEL, RECIPE, Package, Recipe, RecipeFile, deb_arch, pin_differences
from .unpack import unpack_all

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# image assembly -----------------------------------------------------------------------------
def build(store: Store, recipe: Recipe, packages: list[Package], listener: Listener = ignore) -> str:
    """Build the component image into the store under `recipe.ref`; return its manifest digest.
    `listener` hears the .deb downloads."""

    try:
        debs = fetch_packages(store, packages, listener, recipe.arch)
    except PackageUnavailable as exc:
        differences = stored_differences(store, recipe, packages)
        if differences is not None and not differences:
            return _stored_digest(store, recipe)  # imported, built from exactly the pins: it stands in
        raise drift_error(recipe, exc.package, exc.what, "; ".join(differences or [])) from None
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # a dpkg-deb each: side by side
        installed = sum(pool.map(lambda package, deb: _check_control(recipe, package, deb), packages, debs))
    # the kernel layout copies the modules it keeps into kernel.tar beside the tree: room for both
    needed = installed * (2 if recipe.layout == "kernel" else 1)
    with store.tempdir(f"component-{recipe.name}-") as work, store.scratch_tree(f"{recipe.name}-", needed) as tree:
        root = tree / "root"
        root.mkdir()
        listings = unpack_all(debs, root, tree / "unpacked", preexec=_fixed_umask)
        service = _service_base(recipe, debs, listings)
        keep = _kept_paths(recipe, root, packages, listings, service)
        if keep is not None:
            elfdeps.prune(root, keep)
        for pattern in recipe.exclude:
            for doomed in sorted(root.glob(pattern), reverse=True):
                _remove(doomed)
        if service is not None:
            _lay_service_base(root, service)
        _add_recipe_files(recipe, root)
        if recipe.busybox_links:
            _busybox_links(root)
        layout = LAYOUTS.get(recipe.layout)
        if layout is None:
            raise ComponentError(f"{recipe.folder}: unknown layout {recipe.layout!r}; known: {sorted(LAYOUTS)}")
        image_root = layout(recipe, root, tree)
        layer = work / "layer.tar"  # in the store's tmp/: renamed into blobs/
        with atomic_writer(layer) as out:
            write_tree_tar(image_root, out)
        digest = sha256_file(layer)
        size = layer.stat().st_size
        store.put_blob_file(layer, digest)
        config = _image_config(recipe, packages, diff_id=digest)
        return store.write_image(recipe.ref, config, [(digest, size, MEDIA_LAYER_TAR)])


@dataclass(frozen=True)
class ServiceBase:
    """What dpkg's configure step would have left for a service image (see `maintainer`)."""

    conffiles: tuple[str, ...]  # of every package of the closure
    folders: tuple[str, ...]  # the folders the packages ship empty (/var/log/nginx)
    accounts: maintainer.Accounts
    actions: tuple[maintainer.Action, ...]


def _service_base(recipe: Recipe, debs: list[Path], listings: list[list[str]]) -> ServiceBase | None:
    """A runnable root image (an entrypoint or a command) gets a service's base; init images, kernels
    and data images (ca-certificates) stay exactly what their recipes say. `listings`: what each .deb holds."""
    if recipe.layout != "root" or not (recipe.config.get("entrypoint") or recipe.config.get("cmd")):
        return None
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # a dpkg-deb each: side by side
        controls = list(pool.map(maintainer.read_control, debs))
    scripts = [control.postinst for control in controls]
    return ServiceBase(
        conffiles=tuple(path for control in controls for path in control.conffiles),
        folders=tuple(folder for listing in listings for folder in listing if folder.endswith("/")),
        accounts=maintainer.declared_accounts(scripts),
        actions=tuple(action for script in scripts for action in maintainer.postinst_actions(script)),
    )


def _lay_service_base(root: Path, service: ServiceBase) -> None:
    for folder, mode in maintainer.BASE_FOLDERS:
        maintainer.make_folders(root, folder, mode)
    for folder in service.folders:
        maintainer.make_folders(root, folder)
    maintainer.write_accounts(root, service.accounts)
    maintainer.apply_actions(root, list(service.actions))


def _kept_paths(
    recipe: Recipe, root: Path, packages: list[Package], listings: list[list[str]], service: ServiceBase | None
) -> set[str] | None:
    """What stays of the unpacked packages (None: everything). `keep:` globs and what they need; without
    it, every file of the packages the recipe names and the libraries those need from the dependencies,
    and for a service the conffiles of the whole closure and the files its postinst copies."""
    if recipe.keep:
        return elfdeps.closure(root, recipe.keep, provider=library_provider)
    if recipe.whole_packages or not recipe.depends or not recipe.packages:
        return None
    named = set(recipe.packages)
    files = [
        path.rstrip("/")
        for package, listing in zip(packages, listings, strict=True)
        if package.name in named
        for path in listing
    ]
    if service is not None:
        files += [*service.conffiles, *maintainer.copy_sources(list(service.actions))]
    return elfdeps.closure(root, exact=files, provider=library_provider)


def stored_differences(store: Store, recipe: Recipe, packages: list[Package]) -> list[str] | None:
    """How the image the store names for `recipe` differs from the .debs `packages` pins (one line per
    package and field, both values in full; empty when it records exactly them), or None when the store
    names no image for it. An image imported from a teammate stands in for .debs the archive lost only
    when it records exactly the pins."""
    digest = store.lookup(recipe.ref)
    if digest is None:
        return None
    labels = store.image_by_digest(str(recipe.ref), digest).labels
    return pin_differences(f"the store's {recipe.ref.familiar()}", packages, labels)


def _stored_digest(store: Store, recipe: Recipe) -> str:
    digest = store.lookup(recipe.ref)
    assert digest is not None
    return digest


def _check_control(recipe: Recipe, package: Package, deb: Path) -> int:
    """The .deb's own control fields against its pin: the sha256 pins the bytes, so a version or an
    architecture edited in a lock by hand would otherwise be recorded in the image as if it were true.
    Returns the bytes it unpacks to (its Installed-Size; without one, five times the .deb's size)."""
    import sh

    asked = ("Package", "Version", "Architecture", "Installed-Size")
    fields = str(sh.Command("dpkg-deb")("-f", str(deb), *asked)).splitlines()
    control = dict(line.split(": ", 1) for line in fields if ": " in line)
    pinned = {"Package": package.name, "Version": package.version, "Architecture": deb_arch(package)}
    for name, want in pinned.items():
        if control.get(name, "") != want:
            raise ComponentError(
                f"component {recipe.build_name}: {package.name} is pinned with {name.lower()} {want}, but the .deb "
                f"of the pinned sha256 {package.sha256} says {control.get(name, 'nothing')}: pin what the "
                f"archive serves with `distrokit lock --update {recipe.build_name}`"
            )
    size = control.get("Installed-Size", "").strip()
    return int(size) * 1024 if size.isdigit() else 5 * deb.stat().st_size


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
        try:
            return str(sh.Command(str(busybox))("--list-full")).split()
        except (sh.CommandNotFound, PermissionError) as exc:
            raise BuildError(
                f"cannot run {busybox} to list its applets ({type(exc).__name__}): is the store on a file system "
                "mounted noexec? Put the store (--cache) or DISTROKIT_SCRATCH on one where programs may run"
            ) from None
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


def with_default_path(env: list[str]) -> list[str]:
    """The recipe's environment with Docker's default PATH first unless it sets one: images on Docker
    Hub carry it, and a spec's `command: ["sh", "-c", ...]` relies on it (runc finds `sh` through it)."""
    if any(item.startswith("PATH=") for item in env):
        return list(env)
    return [DEFAULT_PATH, *env]


def _image_config(recipe: Recipe, packages: list[Package], diff_id: str) -> dict[str, Any]:
    wanted = recipe.config
    labels = {str(k): str(v) for k, v in (wanted.get("labels") or {}).items()}
    recorded = [[p.name, p.version, p.sha256, deb_arch(p)] for p in packages]
    labels[PACKAGES_LABEL] = json.dumps(recorded, separators=(",", ":"))
    if wanted.get("moby") is not None:
        labels[MOBY_LABEL] = json.dumps(wanted["moby"], sort_keys=True, separators=(",", ":"))
    runtime: dict[str, Any] = {"Labels": labels, "Env": with_default_path(wanted.get("env") or [])}
    for ours, theirs in (("entrypoint", "Entrypoint"), ("cmd", "Cmd"), ("workdir", "WorkingDir")):
        if wanted.get(ours) is not None:
            runtime[theirs] = wanted[ours]
    return {
        "architecture": recipe.arch,
        "os": "linux",
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
