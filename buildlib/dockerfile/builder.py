"""A LinuxKit package folder built by buildah into the store, once per set of inputs.

The inputs are the folder's content, the build args, the platform, the manifest digest of every FROM
image (taken from the store, pulled into it first when missing) and buildah's version; the store keeps
a record of them beside the manifest they gave, so `pkg build` and `build` both skip a package whose
record matches. buildah runs with chroot isolation in a throw-away storage under the store (never
/var/lib/containers), is handed the FROM images from the store (`--pull-never`: it reaches no
registry), stamps every time with the build epoch, and exports uncompressed layers, so the same
inputs give the same image digest from any clean store.

RUN steps have no network unless build.yml says `network: true`, as in LinuxKit. buildah refuses
`--network none` with chroot isolation, so buildah itself runs in a new network namespace holding only
a loopback (`unshare --net`): with `--pull-never` it needs no network of its own.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import arches, epoch
from ..errors import BuildError, ComponentError
from ..fsutil import read_json, write_json_atomic, xxh_value
from ..spec.refs import ImageRef
from ..store import pulls, transport
from ..store.images import Store
from ..store.transport import Listener, Network, ignore
from . import BUILD_YML, buildyml, depends, history, instructions
from .buildyml import DockerPackage

BUILDER_VERSION = "2"  # 2: history completed for layers the base recorded none for
BUILD_NAME = "localhost/distrokit-package:build"  # the name inside the throw-away storage only
OUTPUT_LINES = 12  # of a failing step's output, in its error


@dataclass(frozen=True)
class Build:
    """One package for one platform, with its build args and FROM images resolved to digests."""

    package: DockerPackage
    arch: str
    args: tuple[tuple[str, str], ...]
    bases: tuple[tuple[str, str], ...]  # (FROM name, manifest digest)
    depends: tuple[tuple[str, str], ...] = ()  # (`depends` image, manifest digest for this platform)

    @property
    def inputs(self) -> str:
        return xxh_value(
            {
                "folder": self.package.key,
                "dockerfile": self.package.dockerfile,
                "args": [list(pair) for pair in self.args],
                "labels": sorted(self.package.all_labels().items()),
                "platform": f"linux/{self.arch}",
                "network": self.package.network,  # a step that fails without network may pass with it
                "bases": [list(pair) for pair in self.bases],
                "depends": [list(pair) for pair in self.depends],
                "depends_target": [self.package.depends_target, self.package.depends_into_folder],
                "epoch": epoch.build_epoch(),
                "buildah": buildah_version(),
                "builder": BUILDER_VERSION,
            }
        )


LOCAL_PACKAGE = "@lkt:pkg:"  # LinuxKit's build arg value naming another package folder: its tag


def build_args(package: DockerPackage, extra: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    """build.yml's `buildArgs` then the command line's, each `NAME=VALUE`; a later one wins. A value
    `@lkt:pkg:DIR` (DIR relative to build.yml) becomes that package's ORG/IMAGE:TAG, as in LinuxKit."""
    args: dict[str, str] = {}
    for text in (*package.build_args, *extra):
        name, equals, value = text.partition("=")
        if not name or not equals:
            raise ComponentError(f"{package.folder}: build arg {text!r}: give NAME=VALUE")
        args[name] = value
    return tuple(sorted((name, _local_tag(package, value)) for name, value in args.items()))


def local_packages(package: DockerPackage, extra: tuple[str, ...] = ()) -> dict[str, DockerPackage]:
    """The package folders its build args name with `@lkt:pkg:`, by the image reference they give."""
    found = {}
    for text in (*package.build_args, *extra):
        value = text.partition("=")[2]
        if value.startswith(LOCAL_PACKAGE):
            dependency = buildyml.load_package(package.folder / value.removeprefix(LOCAL_PACKAGE))
            found[str(dependency.ref)] = dependency
    return found


def _local_tag(package: DockerPackage, value: str) -> str:
    if not value.startswith(LOCAL_PACKAGE):
        return value
    return buildyml.load_package(package.folder / value.removeprefix(LOCAL_PACKAGE)).ref.familiar()


@dataclass(frozen=True)
class Resolver:
    """Resolves a package's FROM images to digests through the store. With `pull`, a missing image is
    pulled and a FROM naming a local package (`@lkt:pkg:`) builds it first, for the same platform;
    without, anything missing or out of date resolves to None (nothing is up to date then)."""

    store: Store
    arch: str
    pull: bool
    network: Network | None = None
    listener: Listener = ignore
    pin: Callable[[str], str | None] = lambda ref: None  # a lock's manifest digest for a registry FROM image

    def __call__(
        self, package: DockerPackage, extra: tuple[str, ...] = (), chain: tuple[Path, ...] = ()
    ) -> Build | None:
        if package.folder in chain:
            names = " -> ".join(str(folder) for folder in (*chain, package.folder))
            raise ComponentError(f"{package.folder}: packages build from each other in a circle: {names}")
        if self.pull:
            check_can_run(package, self.arch)  # before anything is pulled for a build that cannot run
        args = build_args(package, extra)
        locals_ = local_packages(package, extra)
        bases = []
        for name in instructions.base_images(package.folder / package.dockerfile, dict(args)):
            local = locals_.get(str(ImageRef.parse(name)))
            digest = self._built(local, (*chain, package.folder)) if local else self._pulled(ImageRef.parse(name))
            if digest is None:
                return None
            bases.append((name, digest))
        depends = []
        for name in package.depends:  # LinuxKit's `depends.docker-images`: by digest, for this platform
            digest = self._by_digest(ImageRef.parse(name))
            if digest is None:
                return None
            depends.append((name, digest))
        return Build(package, self.arch, args, tuple(bases), tuple(depends))

    def _built(self, package: DockerPackage, chain: tuple[Path, ...]) -> str | None:
        build = self(package, chain=chain)
        if build is None:
            return None
        if self.pull:
            return ensure(self.store, build, listener=self.listener)[0]
        return self.store.for_arch(self.arch).lookup(package.ref) if up_to_date(self.store, build) else None

    def _pulled(self, ref: ImageRef) -> str | None:
        """The FROM image for this platform: from the store, pulled first when missing and `pull`."""
        store = self.store.for_arch(self.arch)
        pin = self.pin(str(ref))
        if pin is not None:  # locked: that manifest, whatever the tag names now
            if self.pull:
                found = pulls.ensure_pinned(
                    store, ref, pin, network=self.network, arch=self.arch, listener=self.listener
                )
                return found.manifest_digest
            stored = pulls.pinned_in_store(store, pin)
            return stored if store.lookup(ImageRef(ref.domain, ref.path, None, stored)) else None
        if self.pull:
            image = pulls.ensure_image(store, ref, arch=self.arch, network=self.network, listener=self.listener)
            return image.manifest_digest
        return self._held(ref)

    def _held(self, name: ImageRef) -> str | None:
        store = self.store.for_arch(self.arch)
        digest = store.lookup(name)
        if digest is None or store.image_by_digest(str(name), digest).config.get("architecture") != self.arch:
            return None  # the name holds only another platform's image
        return digest

    def _by_digest(self, ref: ImageRef) -> str | None:
        """A `depends` image for this platform. Its digest may be a multi-platform index's, which the store
        keeps no record of, so the image is stored under a name made of that digest (tag `sha256-HEX`):
        the store resolves that name's platforms as any other's, pulling nothing once it is there."""
        assert ref.digest is not None  # build.yml's check refuses a `depends` image without one
        name = ImageRef(ref.domain, ref.path, ref.digest.replace(":", "-"))
        digest = self._held(name)
        if digest is not None or not self.pull:
            return digest
        network = self.network or Network.from_env()
        source = transport.resolve(ref, network)
        store = self.store.for_arch(self.arch)
        return pulls.copy_into_store(store, source, name, network=network, arch=self.arch, listener=self.listener)


def resolve(
    store: Store,
    package: DockerPackage,
    arch: str,
    extra_args: tuple[str, ...] = (),
    *,
    pull: bool,
    network: Network | None = None,
    listener: Listener = ignore,
    pin: Callable[[str], str | None] = lambda ref: None,
) -> Build | None:
    """The build of `package` for `arch`, its FROM images resolved (see Resolver)."""
    return Resolver(store, arch, pull, network, listener, pin)(package, extra_args)


def record_path(store: Store, build: Build) -> Path:
    return package_record(store, build.package, build.arch)


def package_record(store: Store, package: DockerPackage, arch: str) -> Path:
    """The store's record of what the package was last built from for `arch`, and the manifest it gave."""
    return store.root / "packages" / f"{package.build_name}-{arch}.built.json"


def chain(package: DockerPackage) -> list[DockerPackage]:
    """The package and every local package it builds on (`@lkt:pkg:`), each once."""
    found: dict[Path, DockerPackage] = {}
    waiting = [package]
    while waiting:
        current = waiting.pop()
        if current.folder not in found:
            found[current.folder] = current
            waiting.extend(local_packages(current).values())
    return list(found.values())


def registry_bases(package: DockerPackage) -> list[str]:
    """The registry images (full references) the package and the local packages it builds on are FROM:
    what a spec's lock pins for it."""
    found: list[str] = []
    for each in chain(package):
        locals_ = local_packages(each)
        for name in instructions.base_images(each.folder / each.dockerfile, dict(build_args(each))):
            ref = str(ImageRef.parse(name))
            if ref not in locals_ and ref not in found:
                found.append(ref)
    return found


def up_to_date(store: Store, build: Build | None) -> bool:
    if build is None:
        return False
    try:
        record = read_json(record_path(store, build))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("inputs") != build.inputs:
        return False
    return bool(record.get("manifest")) and store.for_arch(build.arch).lookup(build.package.ref) == record["manifest"]


def ensure(store: Store, build: Build, force: bool = False, listener: Listener = ignore) -> tuple[str, bool]:
    """The package's manifest digest in the store, and whether it had to be built now."""
    if not force and up_to_date(store, build):
        digest = store.for_arch(build.arch).lookup(build.package.ref)
        assert digest is not None
        return digest, False
    return run_build(store, build, listener), True


def run_build(store: Store, build: Build, listener: Listener = ignore) -> str:
    """buildah bud in a throw-away storage, its image taken into the store: the manifest digest."""
    package = build.package
    with store.tempdir("buildah-") as work:
        storage = Storage(work)
        for name, digest in build.bases:
            destination = f"containers-storage:[{storage.spec}]{ImageRef.parse(name)}"
            pulls.copy_out_of_store(store, digest, destination)
        _run_bud(store, storage, build)
        layout = work / "image"
        _buildah(storage, "push", "--quiet", "--disable-compression", BUILD_NAME, f"oci:{layout}:image")
        history.fix_layout(layout, epoch.iso_time(epoch.build_epoch()))  # so another package can build on it
        digest = pulls.copy_into_store(
            store.for_arch(build.arch), f"oci:{layout}:image", package.ref, arch=build.arch, listener=listener
        )
    write_json_atomic(record_path(store, build), {"inputs": build.inputs, "manifest": digest})
    return digest


@dataclass(frozen=True)
class Storage:
    """buildah's storage for one build: vfs (no mounts to leave behind) in a folder of the store."""

    work: Path

    @property
    def spec(self) -> str:
        return f"vfs@{self.work / 'root'}+{self.work / 'run'}"

    def flags(self) -> list[str]:
        return ["--root", str(self.work / "root"), "--runroot", str(self.work / "run"), "--storage-driver", "vfs"]


# what binfmt_misc names the handler that runs another architecture's programs (qemu-user-static's)
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_NAMES = {"arm64": "aarch64", "riscv64": "riscv64", "amd64": "x86_64"}


def check_can_run(package: DockerPackage, arch: str) -> None:
    """RUN steps for another architecture need the host to run its programs: say so before buildah fails."""
    if arch == arches.host_arch():
        return
    steps = instructions.instructions(package.folder / package.dockerfile)
    if not any(step.keyword == "RUN" for step in steps):
        return  # COPY, ENV, ... need no emulation
    handler = BINFMT / f"qemu-{QEMU_NAMES.get(arch, arch)}"
    if not _enabled(handler):
        raise BuildError(
            f"{package.folder}: its RUN steps for {arch} need this {arches.host_arch()} host to run "
            f"{arch} programs, and no binfmt handler {handler} is registered for them: "
            "`apt-get install qemu-user-static binfmt-support`, `mount -t binfmt_misc binfmt_misc "
            f"{BINFMT}`, `update-binfmts --enable {handler.name}` (scripts/setup.sh does all three)"
        )


def _enabled(handler: Path) -> bool:
    try:
        return handler.read_text().startswith("enabled")
    except OSError:
        return False


def _run_bud(store: Store, storage: Storage, build: Build) -> None:
    package = build.package
    command = ["bud", "--pull-never", "--isolation", "chroot", "--timestamp", str(epoch.build_epoch())]
    command += ["--platform", f"linux/{build.arch}", "-f", str(package.folder / package.dockerfile)]
    command += [f"--build-arg={name}={value}" for name, value in build.args]
    command += [f"--label={name}={value}" for name, value in package.all_labels().items()]
    context = build_context(package, storage.work)
    if build.depends:
        depends.save_images(store, build.depends, context, package.depends_target, package.depends_into_folder)
    done = _buildah_run(storage, *command, "-t", BUILD_NAME, str(context), offline=not package.network)
    if done.returncode != 0 and done.stdout.startswith(NO_NAMESPACE):
        raise BuildError(
            f"{package.folder}: could not take the network from its RUN steps ({done.stdout.strip()}): "
            "a network namespace needs root (CAP_SYS_ADMIN); or give them the host's with `network: true` "
            "in build.yml"
        )
    if done.returncode != 0:
        raise step_failure(package, done.stdout)


def build_context(package: DockerPackage, work: Path) -> Path:
    """The folder buildah builds from: the package folder itself, or with `extra-sources` or `depends` a
    copy of it with each source copied in at its destination (as LinuxKit lays out its build context)."""
    if not package.extra_sources and not package.depends:
        return package.folder
    context = work / "context"
    shutil.copytree(package.folder, context, symlinks=True)
    for source, destination in package.extra_sources:
        shutil.copytree(source, context / destination.lstrip("/"), symlinks=True, dirs_exist_ok=True)
    return context


def step_failure(package: DockerPackage, output: str) -> BuildError:
    """One error for a failed build: the Dockerfile's line when buildah names the step, and the last output."""
    dockerfile = package.folder / package.dockerfile
    lines = [line for line in output.splitlines() if line.strip()]
    failed = next((line for line in reversed(lines) if "building at STEP" in line), "")
    step, _, status = failed.partition('": ')
    step = step.split('STEP "', 1)[-1]
    found = instructions.find_step(dockerfile, step) if step else None
    where = f"{dockerfile}:{found.line}" if found else str(dockerfile)
    what = f"{step} failed ({status or 'see its output'})" if step else "buildah failed"
    if not package.network and step.startswith("RUN"):
        what += f" without network (RUN steps have none unless {package.folder / BUILD_YML} says `network: true`)"
    # buildah repeats the exit status (already in the message) twice: the output is the step's own lines
    tail = [line for line in lines if line != failed and not line.startswith("subprocess exited with")][-OUTPUT_LINES:]
    return BuildError(f"{where}: {what}; the last of its output:\n  " + "\n  ".join(tail))


def _buildah(storage: Storage, *args: str) -> str:
    done = _buildah_run(storage, *args)
    if done.returncode != 0:
        raise BuildError(f"buildah {args[0]} failed: {done.stdout.strip().splitlines()[-1:] or done.returncode}")
    return done.stdout


# runs the command after it in a new network namespace whose only link, loopback, is up (as Docker's
# `--network none` leaves it: a step may still serve and reach 127.0.0.1 inside its own namespace)
OFFLINE = ("unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "offline")
NO_NAMESPACE = "unshare:"  # how util-linux's unshare begins the line saying it could not make one


def _buildah_run(storage: Storage, *args: str, offline: bool = False) -> subprocess.CompletedProcess[str]:
    if shutil.which("buildah") is None:
        raise BuildError("buildah is not installed: `apt-get install buildah` (scripts/setup.sh installs it)")
    if offline and shutil.which("ip") is None:
        raise BuildError("ip is not installed: `apt-get install iproute2` (scripts/setup.sh installs it)")
    command = [*(OFFLINE if offline else ()), "buildah", *storage.flags(), *args]
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)


@functools.cache
def buildah_version() -> str:
    if shutil.which("buildah") is None:
        return "missing"
    done = subprocess.run(["buildah", "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip()
