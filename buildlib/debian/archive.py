"""What a recipe takes from Debian's archive: its packages resolved with apt (the dependency closure
for its architecture), pinned in the store the first time, checked against what the archive serves
now, and fetched into the store's debs/.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from urllib.parse import unquote

from ..arches import DEFAULT_ARCH
from ..errors import ArchiveDrift, ComponentError
from ..fsutil import read_json, sha256_file, write_json_atomic
from ..store.images import Store
from ..store.transport import Event, EventKind, Listener, ignore
from . import apt as debarch
from .recipes import Package, Recipe


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


def pin_all(cache: Path, recipes: list[Recipe]) -> None:
    """`pinned_packages` for every recipe, those the store has no pin for asked of apt side by side: each
    is an apt process of its own (about 0.4 s), and a spec of 15 new components would wait for them one
    after another. The first failure in the given order is the one raised, as one by one."""
    unpinned = [recipe for recipe in recipes if not pin_path(cache, recipe).is_file()]  # a stat, no parse
    if len(unpinned) < 2:
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(unpinned), 4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda recipe: pinned_packages(cache, recipe), unpinned))


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
        lines = _closure_lines(names, f"{recipe.folder}: apt cannot install {' '.join(names)}", recipe.arch)
        closure = _closure_packages(lines)
        if not recipe.follow and closure is not None:
            return closure  # the resolver's own answer names each .deb's size and SHA256: no second apt run
        names = _closure_requests(lines)
    names += [dep for meta in recipe.follow for dep in _depends(meta, recipe.arch)]
    if not names:
        return []
    return print_uris(names, f"{recipe.folder}: apt cannot find {' '.join(names)}", recipe.arch)


def dependency_closure(names: list[str], failure: str, arch: str = DEFAULT_ARCH) -> list[str]:
    """`names` and everything they depend on (no recommends), as NAME=VERSION, from apt's resolver run
    against an empty package database: what a bare system would need, whatever the host has installed."""
    return _closure_requests(_closure_lines(names, failure, arch))


def _closure_lines(names: list[str], failure: str, arch: str) -> list[str]:
    """apt's `install --print-uris` lines for `names` on an empty system (see dependency_closure)."""
    import sh

    options = [
        *debarch.bare_system_options(arch),
        "-oDebug::NoLocking=1",
        "-oAcquire::ForceHash=SHA256",  # the hash `print_uris` gives (apt prints the MD5 otherwise)
        "-oAPT::Install-Recommends=false",
        "-oAPT::Install-Suggests=false",
    ]
    try:
        output = str(sh.Command("apt-get")(*options, "install", "--print-uris", "-qq", *names))
    except sh.ErrorReturnCode as exc:
        raise ComponentError(apt_failure(failure, exc.stderr.decode(errors="replace"), arch)) from exc
    return [line.strip() for line in output.splitlines() if line.startswith("'")]


def _closure_requests(lines: list[str]) -> list[str]:
    requests = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and parts[1].endswith(".deb"):
            name, version, _ = parts[1].removesuffix(".deb").split("_", 2)
            requests.append(f"{name}={unquote(version)}")
    return sorted(set(requests))


def _closure_packages(lines: list[str]) -> list[Package] | None:
    """The closure's .deb files as `print_uris` gives them; None when a line lacks its SHA256 (an apt
    that does not take ForceHash): then `print_uris` is asked."""
    packages = _packages_in(lines)
    return packages if len(packages) == len(lines) else None


# apt's ways of saying that it knows no such package (or no such version of it) for the architecture
_NOT_IN_ARCHIVE = (
    re.compile(r"Unable to locate package (?P<name>\S+)"),
    re.compile(r"Package '?(?P<name>[^' ]+)'? has no installation candidate"),
    re.compile(r"Version '(?P<version>[^']+)' for '(?P<name>[^']+)' was not found"),
    re.compile(r"Can't find a source to download version '(?P<version>[^']+)' of '(?P<name>[^':]+)"),
    re.compile(r"No packages found"),
)


def apt_failure(failure: str, stderr: str, arch: str, subject: str = "the package") -> str:
    """One line for an apt error: a name (or version) the archive does not have is said so, since
    `apt-get update` cannot help with a misspelt name; anything else is apt's last line and the update hint."""
    for pattern in _NOT_IN_ARCHIVE:
        match = pattern.search(stderr)
        if match is None:
            continue
        found = match.groupdict()
        what = found.get("name") or subject
        if found.get("version"):
            what = f"{what} {found['version']}"
        return f"{failure}: {what} is not in Debian's archive for {arch} (check the name with `apt-cache search`)"
    lines = stderr.strip().splitlines()
    return f"{failure}: {lines[-1] if lines else 'apt failed'} (run `apt-get update` first)"


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
        raise ComponentError(apt_failure(failure, exc.stderr.decode(errors="replace"), arch)) from exc
    return _packages_in(str(output).splitlines())


def _packages_in(lines: list[str]) -> list[Package]:
    """The .deb files apt's `--print-uris` lines name (`'URI' FILE SIZE SHA256:HASH`), sorted by name."""
    packages = []
    for line in lines:
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
        failure = f"{recipe.folder}: apt cannot find {' '.join(requests)}"
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
            raise drift_error(recipe, package, f"serves other bytes (sha256 {now.sha256}) for")
    return [served[p.name] for p in pinned]


def drift_error(recipe: Recipe, package: Package, what: str, stored: str = "") -> ArchiveDrift:
    """The error for a pinned .deb the archive cannot give: what (hashes in full: two cut alike read the
    same), how the store's image differs from the pins when it has one (`stored`), and the two ways forward."""
    besides = f"; the store's image does not stand in ({stored})" if stored else ""
    return ArchiveDrift(
        f"component {recipe.build_name}: the Debian archive {what} {package.name} {package.version} "
        f"(pinned sha256 {package.sha256}){besides}: import the component image built from it "
        f"(`distrokit cache import FILE {recipe.ref.familiar()}`, FILE from `distrokit cache export` "
        f"where it was built or pulled), or pin what the archive has now with "
        f"`distrokit lock --update {recipe.build_name}`"
    )


def _depends(meta: str, arch: str = DEFAULT_ARCH) -> list[str]:
    import sh

    try:
        output = str(sh.Command("apt-cache")(*debarch.apt_options(arch), "depends", "--important", meta))
    except sh.ErrorReturnCode as exc:
        stderr = exc.stderr.decode(errors="replace")
        raise ComponentError(apt_failure(f"follow: {meta}", stderr, arch, subject=meta)) from exc
    return [line.split(":", 1)[1].strip() for line in output.splitlines() if line.strip().startswith("Depends:")]


def fetch_packages(
    store: Store, packages: list[Package], listener: Listener = ignore, arch: str = DEFAULT_ARCH
) -> list[Path]:
    """The .deb files of `packages` in the store, in their order: those missing come from one
    `apt-get download` of them all (one apt process resolves once and keeps its connection to the mirror
    busy; an apt process per .deb spent about 2 s each starting up), each checked against its pinned
    SHA256 before it lands. When that download fails, the missing ones are fetched one by one, so the
    error names the .deb the archive cannot give."""
    missing = [package for package in packages if not _in_store(store, package)]
    if len(missing) > 1:
        with contextlib.suppress(PackageUnavailable):
            _download_together(store, missing, listener, arch)
    return [fetch_package(store, package, listener, arch) for package in packages]


def _in_store(store: Store, package: Package) -> bool:
    target = _store_path(store, package)
    return target.is_file() and sha256_file(target) == "sha256:" + package.sha256


def _store_path(store: Store, package: Package) -> Path:
    return store.root / "debs" / package.filename


def _download_together(store: Store, packages: list[Package], listener: Listener, arch: str) -> None:
    """`packages` downloaded by one apt-get and moved into the store; PackageUnavailable when apt fails or
    a .deb is missing or has other bytes (then none of the unchecked ones land)."""
    import sh

    with store.tempdir("debs-") as workdir:
        started = time.monotonic()
        for package in packages:
            listener(Event(EventKind.START, package.filename))
        requests = [f"{package.name}={package.version}" for package in packages]
        try:
            with _reporting_size(workdir, [p.filename for p in packages], listener):
                sh.Command("apt-get")(*debarch.apt_options(arch), "download", *requests, _cwd=str(workdir))
        except sh.ErrorReturnCode as exc:
            raise PackageUnavailable(packages[0], "no longer serves") from exc
        for package in packages:
            size = _land(store, package, workdir / package.filename)
            listener(Event(EventKind.DONE, package.filename, size, seconds=time.monotonic() - started))


def _land(store: Store, package: Package, downloaded: Path) -> int:
    """Move a downloaded .deb into the store's debs/ once its bytes are the pinned ones; its size."""
    if not downloaded.is_file():
        raise PackageUnavailable(package, "no longer serves")
    actual = sha256_file(downloaded).removeprefix("sha256:")
    if actual != package.sha256:
        raise PackageUnavailable(package, f"serves other bytes (sha256 {actual}) for")
    target = _store_path(store, package)
    target.parent.mkdir(parents=True, exist_ok=True)
    size = downloaded.stat().st_size
    downloaded.replace(target)  # same file system as the store: atomic
    return size


def fetch_package(store: Store, package: Package, listener: Listener = ignore, arch: str = DEFAULT_ARCH) -> Path:
    """The .deb file in the cache, downloaded (`apt-get download NAME=VERSION`) and checked against its
    pinned SHA256 when missing; PackageUnavailable when the archive cannot give those bytes. `listener` hears
    the download's start, the bytes so far and its end, as it hears a pull's."""
    import sh

    target = _store_path(store, package)
    if _in_store(store, package):
        return target
    with store.tempdir(f"deb-{package.name}-") as workdir:
        started = time.monotonic()
        listener(Event(EventKind.START, package.filename))
        try:
            options = debarch.apt_options(arch)
            with _reporting_size(workdir, [package.filename], listener):
                sh.Command("apt-get")(*options, "download", f"{package.name}={package.version}", _cwd=str(workdir))
        except sh.ErrorReturnCode as exc:
            raise PackageUnavailable(package, "no longer serves") from exc
        size = _land(store, package, workdir / package.filename)
    listener(Event(EventKind.DONE, package.filename, size, seconds=time.monotonic() - started))
    return target


@contextlib.contextmanager
def _reporting_size(folder: Path, names: list[str], listener: Listener) -> Iterator[None]:
    """While the block runs, tell `listener` every quarter second how many bytes of each named file
    `folder` holds (apt writes a .deb under its own name as it arrives)."""
    if listener is ignore:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.25):
            for name in names:
                try:
                    landed = (folder / name).stat().st_size
                except OSError:  # not started yet, or apt renamed it between the check and the stat
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
