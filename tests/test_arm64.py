"""arm64 end to end on this amd64 host: components from Debian's arm64 packages, platforms side by side in
the store, a build of specs/minimal.yml for arm64 and its boot under qemu-system-aarch64 (TCG)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO, SPECS, Built, build, dodo_project, doit, once_per_run
from registry import Registry, push_index, random_layer, stored_image

from buildlib import arches
from buildlib.debian import archive, elfdeps, recipes
from buildlib.errors import BadInput
from buildlib.guest import machines, runner
from buildlib.spec.refs import ImageRef
from buildlib.store import platforms, pulls
from buildlib.store.images import Store
from buildlib.store.transport import Event, EventKind, Network, RetryPolicy
from buildlib.tasks.families import record_path

NET = Network(retry=RetryPolicy(attempts=5, timeout=4, backoff=0.05, max_backoff=0.2))
ARM64_BOOT_TIMEOUT = 600  # TCG emulates every instruction; a loaded 2-core machine makes it slower still


# units: no network, no guest ----------------------------------------------------------------
def test_architecture_names_and_elf_headers() -> None:
    assert arches.normalise("linux/arm64") == arches.normalise("aarch64") == "arm64"
    with pytest.raises(BadInput, match="s390x.*amd64, arm64, riscv64"):
        arches.normalise("s390x")
    assert arches.elf_arch(Path(shutil.which("busybox") or "/bin/busybox")) == arches.host_arch() == "amd64"
    assert arches.elf_arch(REPO / "README.md") is None
    assert elfdeps.library_dirs("arm64")[:2] == ("lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu")


def test_the_kernel_chooses_the_emulator(tmp_path: Path) -> None:
    arm64 = tmp_path / "Image"
    arm64.write_bytes(bytes(0x38) + b"ARM\x64" + bytes(0x200))
    bzimage = tmp_path / "bzImage"
    bzimage.write_bytes(bytes(0x202) + b"HdrS" + bytes(16))
    assert machines.machine_for(arm64).qemu == "qemu-system-aarch64"
    assert machines.machine_for(bzimage).qemu == "qemu-system-x86_64"
    assert machines.machine_for(bzimage, "arm64").qemu == "qemu-system-aarch64"  # --arch forces it
    virt = machines.MACHINES["arm64"]
    assert machines.console_for("console=ttyS0,115200 quiet", virt) == "console=ttyAMA0,115200 quiet"
    assert machines.console_for("console=tty0 console=ttyS0", virt) == "console=tty0 console=ttyAMA0"
    assert machines.console_for("console=ttyS0", machines.MACHINES["amd64"]) == "console=ttyS0"


def test_recipes_name_packages_per_architecture(tmp_path: Path) -> None:
    folder = tmp_path / "tool"
    folder.mkdir()
    (folder / "component.yml").write_text(
        'packages: [busybox-static, "extra-{arch}"]\npackages-arm64: [busybox-static]\nfollow: ["meta-{arch}"]\n'
    )
    amd64, arm64 = recipes.load_recipe(folder), recipes.load_recipe(folder, "arm64")
    assert amd64.packages == ("busybox-static", "extra-amd64") and arm64.packages == ("busybox-static",)
    assert amd64.follow == ("meta-amd64",) and arm64.follow == ("meta-arm64",)
    assert amd64.key == arm64.key and amd64.ref != arm64.ref and arm64.ref.tag == f"{arm64.key}-arm64"
    assert recipes.load_recipe(COMPONENTS / "kernel", "arm64").follow == ("linux-image-cloud-arm64",)


def _image(store: Store, name: str, arch: str) -> str:
    layer = random_layer(store, 2_000, f"only-{arch}")
    return stored_image(store, ImageRef.parse(name), [layer], arch)


def test_one_name_holds_both_platforms(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    ref = ImageRef.parse("example.invalid/app:v1")
    digests = {arch: _image(store, f"local/app-{arch}", arch) for arch in ("amd64", "arm64")}
    platforms.add_platform(store, ref, digests["amd64"])
    assert store.named_digest(ref) == digests["amd64"]  # one platform: the name is the manifest, as before
    platforms.add_platform(store, ref, digests["arm64"])
    index = store.read_json_blob(store.named_digest(ref) or "")
    assert [e["platform"]["architecture"] for e in index["manifests"]] == ["amd64", "arm64"]
    assert store.lookup(ref) == digests["amd64"] and store.for_arch("arm64").lookup(ref) == digests["arm64"]
    assert store.for_arch("riscv64").lookup(ref) is None
    assert platforms.held_platforms(store, ref) == digests
    replaced = _image(store, "local/app-arm64-2", "arm64")
    platforms.add_platform(store, ref, replaced)
    assert platforms.held_platforms(store, ref) == {"amd64": digests["amd64"], "arm64": replaced}
    assert record_path(store, str(ref)) != record_path(store.for_arch("arm64"), str(ref))


@pytest.mark.registry
def test_switching_arch_never_pulls_again(registry: Registry, tmp_path: Path) -> None:
    source = Store(tmp_path / "source")
    per_arch = {arch: _image(source, f"local/sw-{arch}", arch) for arch in ("amd64", "arm64")}
    ref = ImageRef.parse(f"{registry.host}/test/switch:v1")
    push_index(source, per_arch, str(ref))
    store = Store(tmp_path / "cache")
    events: list[Event] = []
    for arch in ("amd64", "arm64", "amd64", "arm64"):
        image = pulls.ensure_image(store, ref, network=NET, arch=arch, listener=events.append)
        assert image.manifest_digest == per_arch[arch] and image.config["architecture"] == arch
    assert [e.kind for e in events if e.kind is EventKind.START] == [EventKind.START] * 2  # the first two only


# arm64 builds and boots ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def arm64_build(request: pytest.FixtureRequest, shared_cache: Path) -> Built:
    """specs/minimal.yml built for arm64 into the shared store (beside the amd64 build), once per run."""
    return once_per_run(
        request, "out-arm64", lambda out: build(SPECS / "minimal.yml", shared_cache, out, "minimal-arm64", arch="arm64")
    )


@pytest.mark.arm64
def test_arm64_components_are_arm64(arm64_build: Built, tmp_path: Path) -> None:
    store = Store(arm64_build.cache)
    for name in ("kernel", "init"):
        recipe = recipes.load_recipe(COMPONENTS / name, "arm64")
        image = store.image(recipe.ref)
        assert image.config["architecture"] == "arm64"
        assert set(recipes.recorded_architectures(image.labels, "?").values()) <= {"arm64", "all"}
    init = store.image(recipes.load_recipe(COMPONENTS / "init", "arm64").ref)
    with tarfile.open(store.blob_path(init.layers[0].digest)) as layer:
        layer.extract("bin/busybox", tmp_path, filter="data")
        links = {m.name for m in layer.getmembers() if m.issym() and m.linkname == "/bin/busybox"}
    assert arches.elf_arch(tmp_path / "bin" / "busybox") == "arm64"
    assert {"bin/sh", "sbin/poweroff", "sbin/switch_root"} <= links  # listed without running the arm64 binary
    kernel = arm64_build.prefix.with_name("minimal-arm64-kernel")
    assert machines.kernel_arch(kernel) == "arm64"


@pytest.mark.arm64
def test_doit_arch_arm64_builds_as_build_arch_arm64(arm64_build: Built, tmp_path: Path) -> None:
    """The project's dodo.py with `doit arch=arm64`: arm64 components from the store, outputs named as
    `distrokit build --arch arm64` names them; run again, it writes nothing."""
    root = dodo_project(tmp_path)
    done = doit(root, arm64_build.cache, "arch=arm64")
    ran = [line for line in done.splitlines() if line.startswith(". ")]  # doit's mark of a task run
    assert ran and not [line for line in ran if "component:" in line]  # the fixture's arm64 components serve
    out = root / "out"
    assert sorted(p.name for p in out.iterdir()) == [f"doitspec-arm64-{s}" for s in ("cmdline", "initrd.img", "kernel")]
    assert machines.kernel_arch(out / "doitspec-arm64-kernel") == "arm64"
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    doit(root, arm64_build.cache, "arch=arm64")
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written


@pytest.mark.arm64
def test_amd64_arm64_amd64_from_one_store_redoes_nothing(minimal_build: Built, arm64_build: Built) -> None:
    """Both platforms stay in the store: building either again runs no task (no pull, no component build)."""
    again = build(SPECS / "minimal.yml", minimal_build.cache, minimal_build.out_dir, minimal_build.name)
    assert again.report.executed == ()
    arm64_again = build(SPECS / "minimal.yml", arm64_build.cache, arm64_build.out_dir, arm64_build.name, arch="arm64")
    assert arm64_again.report.executed == ()
    assert machines.kernel_arch(minimal_build.prefix.with_name("minimal-kernel")) == "amd64"


@pytest.mark.arm64
@pytest.mark.boot
def test_arm64_minimal_boots_under_qemu_system_aarch64(arm64_build: Built, tmp_path: Path) -> None:
    """One arm64 boot (TCG is slow): specs/minimal.yml with runc and one onboot container added, so the guest
    shows minimal.yml's console lines, runs an arm64 container under runc, and powers off."""
    specs = [SPECS / "minimal.yml", REPO / "tests" / "specs" / "arm64-onboot.yml"]
    built = build(specs, arm64_build.cache, tmp_path, "onboot-arm64", arch="arm64")
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(built.cache), "run"]
    command += [str(built.prefix), "--timeout", str(ARM64_BOOT_TIMEOUT), "--networking", "none"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=ARM64_BOOT_TIMEOUT + 30)
    assert done.returncode == 0, f"distrokit run failed: {done.stderr}\n{done.stdout[-3000:]}"
    assert "guest powered off" in done.stderr and "(tcg)" in done.stderr
    assert "container machine: aarch64" in done.stdout  # the onboot container, under runc
    uname = next(line for line in done.stdout.splitlines() if line.startswith("Linux distrokit"))
    assert uname.split()[-2:] == ["aarch64", "GNU/Linux"]
    installed = done.stdout.split("== installed", 1)[1]
    assert "  runc " in installed and all(
        line.endswith((" arm64", " all")) for line in installed.splitlines() if line.startswith("  ")
    )
    assert "reboot: Power down" in done.stdout


def test_run_says_which_emulator_is_missing(arm64_build_files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(BadInput, match="qemu-system-aarch64 is not installed: run `apt-get install qemu-system-arm`"):
        runner.run(runner.RunOptions(prefix=arm64_build_files))


@pytest.fixture()
def arm64_build_files(tmp_path: Path) -> Path:
    """A kernel+initrd prefix whose kernel has the arm64 Image header (nothing boots it)."""
    prefix = tmp_path / "tiny"
    prefix.with_name("tiny-kernel").write_bytes(bytes(0x38) + b"ARM\x64" + bytes(0x200))
    prefix.with_name("tiny-initrd.img").write_bytes(b"")
    return prefix


def test_sbom_names_each_package_architecture(arm64_build_files: Path) -> None:
    from buildlib.rootfs import sbom
    from buildlib.store.images import Image

    label = json.dumps([["busybox-static", "1:1.35", "ab" * 32, "arm64"], ["tzdata", "2024a", "cd" * 32, "all"]])
    config = {"architecture": "arm64", "config": {"Labels": {recipes.PACKAGES_LABEL: label}}}
    image = Image("docker.io/distrokit/init:x-arm64", "sha256:" + "0" * 64, "sha256:" + "1" * 64, config, ())
    document = sbom.document((image.ref,), {image.ref: image})
    purls = {ref["referenceLocator"] for p in document["packages"] for ref in p.get("externalRefs", ())}
    assert "pkg:deb/debian/busybox-static@1%3A1.35?arch=arm64" in purls
    assert "pkg:deb/debian/tzdata@2024a?arch=all" in purls


@pytest.mark.arm64
@pytest.mark.registry
def test_pkg_push_gives_an_index_of_both_platforms(shared_cache: Path, registry: Registry) -> None:
    from buildlib import cli

    folder = COMPONENTS / "busybox"
    args = ["--cache", str(shared_cache), "pkg", "push", "-q", str(folder), "--to", registry.host]
    assert cli.main([*args, "--arch", "amd64", "--arch", "arm64"]) == 0
    key = recipes.load_recipe(folder).key
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/distrokit/busybox:{key}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    index = json.loads(raw)
    store = Store(shared_cache)
    expected = {arch: store.lookup(recipes.load_recipe(folder, arch).ref) for arch in ("amd64", "arm64")}
    assert {e["platform"]["architecture"]: e["digest"] for e in index["manifests"]} == expected
    pulled = Store(shared_cache.parent / "pulled-index")
    ref = ImageRef.parse(f"{registry.host}/distrokit/busybox:{key}")
    assert pulls.pull(pulled, ref, network=NET, arch="arm64") == expected["arm64"]


@pytest.mark.arm64
def test_gc_keeps_every_architecture_pins(arm64_build: Built, debs_dir: Path, tmp_path: Path) -> None:
    """`cache gc` drops the pins of recipes that no longer exist; the arm64 pin of one that does stays."""
    from conftest import new_cache

    from buildlib import cli

    cache = str(new_cache(tmp_path / "cache", debs_dir))  # the arm64 build filled debs_dir: nothing to download
    assert cli.main(["--cache", cache, "pkg", "build", "--arch", "arm64", str(COMPONENTS / "init")]) == 0
    pins = Path(cache) / "components"
    recipe = recipes.load_recipe(COMPONENTS / "init", "arm64")
    kept = {f"{recipe.pin_name}.json", f"{recipe.pin_name}.built.json"}
    assert {path.name for path in pins.iterdir()} == kept
    assert cli.main(["--cache", cache, "cache", "gc"]) == 0
    assert {path.name for path in pins.iterdir()} == kept


@pytest.mark.arm64
def test_a_locked_arm64_build_follows_its_pins_and_verifies_bit_for_bit(
    arm64_build: Built, spec_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """specs/minimal.yml locked for amd64 and arm64: `build --arch arm64 --locked` takes the lock's arm64
    .debs, its SBOM and installed list name them (arm64 each) and the arm64 images' manifests, and
    `verify --arch arm64` rebuilds every output in a fresh cache bit for bit."""
    import hashlib

    from buildlib import cli, tasks
    from buildlib.outputs import members
    from buildlib.release import lock
    from buildlib.rootfs import parts as rootfs

    cache = ["--cache", str(arm64_build.cache)]
    assert cli.main([*cache, "lock", str(spec_copy), "--arch", "amd64", "--arch", "arm64"]) == 0
    pins = lock.read(spec_copy.with_suffix(".lock"))
    release = tmp_path / "release"
    assert cli.main([*cache, "build", "-q", "--arch", "arm64", "--locked", str(spec_copy), "--dir", str(release)]) == 0
    store = Store(arm64_build.cache, "arm64")
    pinned = {p.name: p for name in ("kernel-arm64", "init-arm64") for p in pins.components[name].packages}
    manifests = {}
    for name in ("kernel", "init"):
        image = store.image(recipes.load_recipe(COMPONENTS / name, "arm64").ref)
        manifests[name] = image.manifest_digest
        assert recipes.recorded_checksums(image.labels) == {
            p.name: p.sha256 for p in pins.components[f"{name}-arm64"].packages
        }
    assert {p.architecture for p in pinned.values()} <= {"arm64", "all"}
    # The SBOM: every .deb by the lock's sha256 and its architecture, every image by its arm64 manifest.
    capsys.readouterr()
    assert cli.main([*cache, "sbom", "--arch", "arm64", str(spec_copy)]) == 0
    rendered = capsys.readouterr().out
    document = json.loads(rendered)
    debs = {p["name"]: p for p in document["packages"] if p.get("supplier") == "Organization: Debian"}
    assert set(debs) == set(pinned)
    for name, package in pinned.items():
        assert debs[name]["checksums"] == [{"algorithm": "SHA256", "checksumValue": package.sha256}]
        assert debs[name]["externalRefs"][0]["referenceLocator"].endswith(f"?arch={package.architecture}")
    found = {
        p["checksums"][0]["checksumValue"]
        for p in document["packages"]
        if p.get("primaryPackagePurpose") == "CONTAINER"
    }
    assert found == {digest.split(":")[1] for digest in manifests.values()}
    # ... and it is the SBOM in the built initrd, beside an installed list of arm64 packages.
    initrd = {m.path: m.data for m in members.members(release / "minimal-arm64-initrd.img")}
    assert initrd["etc/distrokit/sbom.spdx.json"] == hashlib.sha256(rendered.encode()).hexdigest()
    options = tasks.BuildOptions(cache=arm64_build.cache, out_dir=release, name="minimal-arm64", arch="arm64")
    spec, loaded = tasks.ensure_images([spec_copy], options, COMPONENTS)
    installed = rootfs.installed_report(spec, loaded)
    assert initrd[rootfs.INSTALLED_PATH] == hashlib.sha256(installed).hexdigest()
    lines = [line.split() for line in installed.decode().splitlines() if line.startswith("  ")]
    assert {(name, arch) for name, _, arch in lines} == {(p.name, p.architecture) for p in pinned.values()}
    # A fresh cache seeded with the pinned .debs alone rebuilds every arm64 output bit for bit.
    argv = ["verify", str(spec_copy), "--arch", "arm64", "--dir", str(release), "--work", str(tmp_path), "--json"]
    assert cli.main([*cache, *argv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and [item["file"] for item in report["files"]] == [
        "minimal-arm64-kernel",
        "minimal-arm64-initrd.img",
        "minimal-arm64-cmdline",
    ]
    assert report["warnings"] == []
    # An amd64-only lock: verify --locked refuses in one line; without it, it says what it took unpinned.
    assert cli.main([*cache, "lock", str(spec_copy), "--arch", "amd64"]) == 0
    capsys.readouterr()
    assert cli.main([*cache, *argv, "--locked"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "component kernel-arm64 is not pinned" in err, err
    assert cli.main([*cache, *argv]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and len(report["warnings"]) == 2
    assert all("-arm64 is not pinned" in line and "--arch amd64 --arch arm64" in line for line in report["warnings"])


@pytest.mark.arm64
def test_verify_without_a_lock_rebuilds_arm64_from_the_store_pins(arm64_build: Built, tmp_path: Path) -> None:
    """No lock: verify takes what the store last built the arm64 system from (its NAME-arm64 pins and
    the images' arm64 manifests) and rebuilds the arm64 outputs bit for bit."""
    from buildlib import tasks
    from buildlib.release import pinning
    from buildlib.spec.model import load_spec
    from buildlib.tasks import verify

    resolver = recipes.PkgResolver("arm64")
    inputs = pinning.spec_inputs(load_spec([SPECS / "minimal.yml"], resolve_pkg=resolver), COMPONENTS, resolver)
    pins = pinning.pins_in_store(Store(arm64_build.cache), inputs, "linux/arm64")
    store = Store(arm64_build.cache, "arm64")
    assert set(pins.components) == {"kernel-arm64", "init-arm64"}
    for name in ("kernel", "init"):
        labels = store.image(recipes.load_recipe(COMPONENTS / name, "arm64").ref).labels
        recorded = recipes.recorded_checksums(labels)
        assert {p.name: p.sha256 for p in pins.components[f"{name}-arm64"].packages} == recorded
    options = tasks.BuildOptions(
        cache=arm64_build.cache, out_dir=arm64_build.out_dir, name="minimal-arm64", arch="arm64"
    )
    report = verify.verify([SPECS / "minimal.yml"], options, COMPONENTS, work=tmp_path)
    assert report.ok, report.to_json()
    assert [r.name for r in report.files] == [
        "minimal-arm64-kernel",
        "minimal-arm64-initrd.img",
        "minimal-arm64-cmdline",
    ]


@pytest.mark.arm64
def test_an_arm64_build_stamp_watches_the_arm64_pins(arm64_build: Built) -> None:
    """A build that finds nothing changed must see its own architecture's pins move (`pkg build --update`)."""
    from buildlib import tasks
    from buildlib.debian import builds as component_builds
    from buildlib.tasks.stamp import watched_paths

    options = tasks.BuildOptions(
        cache=arm64_build.cache, out_dir=arm64_build.out_dir, name=arm64_build.name, arch="arm64"
    )
    watched = set(watched_paths(tasks.plan_build([SPECS / "minimal.yml"], options, COMPONENTS)))
    store = Store(arm64_build.cache, "arm64")
    for name in ("kernel", "init"):
        recipe = recipes.load_recipe(COMPONENTS / name, "arm64")
        assert archive.pin_path(store.root, recipe).is_file()
        assert {
            str(archive.pin_path(store.root, recipe)),
            str(component_builds.record_path(store, recipe)),
        } <= watched


# arm64 output formats: one build of every format that applies, boots under AAVMF --------------------
ARM64_FORMATS = (
    "kernel+initrd",
    "tar",
    "kernel+squashfs",
    "kernel+erofs",
    "kernel+iso",
    "iso-efi",
    "raw-efi",
    "qcow2-efi",
)
ARM64_MEDIA_SPECS = [SPECS / "minimal.yml", REPO / "tests" / "specs" / "arm64-media.yml"]


@pytest.fixture(scope="session")
def arm64_media(request: pytest.FixtureRequest, arm64_build: Built) -> Built:
    """specs/minimal.yml with runc and the metadata container, built for arm64 into every format that
    applies, in one run, in the store of the arm64 build (its components are reused); once per run."""
    return once_per_run(
        request,
        "out-arm64-media",
        lambda out: build(
            ARM64_MEDIA_SPECS,
            arm64_build.cache,
            out,
            "media-arm64",
            arch="arm64",
            formats=ARM64_FORMATS,
            size=128 << 20,
        ),
    )


def _run_arm64(built: Built, target: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(built.cache), "run", str(target)]
    command += ["--timeout", str(ARM64_BOOT_TIMEOUT), "--networking", "none", *flags]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=ARM64_BOOT_TIMEOUT + 30)


def _booted_aarch64(done: subprocess.CompletedProcess[str]) -> str:
    """The console of a guest that showed minimal.yml's report as aarch64 and powered off cleanly."""
    assert done.returncode == 0, f"distrokit run failed: {done.stderr}\n{done.stdout[-3000:]}"
    assert "guest powered off" in done.stderr and "(tcg)" in done.stderr
    uname = next(line for line in done.stdout.splitlines() if line.startswith("Linux distrokit"))
    assert uname.split()[-2:] == ["aarch64", "GNU/Linux"]
    assert "== installed" in done.stdout and "reboot: Power down" in done.stdout
    return done.stdout


@pytest.mark.arm64
def test_arm64_tar_holds_the_arm64_root(arm64_media: Built, tmp_path: Path) -> None:
    with tarfile.open(arm64_media.prefix.with_name("media-arm64.tar")) as archive:
        names = set(archive.getnames())
        archive.extract("bin/busybox", tmp_path, filter="data")
        archive.extract("usr/sbin/runc", tmp_path, filter="data")
    assert arches.elf_arch(tmp_path / "bin" / "busybox") == "arm64"
    assert arches.elf_arch(tmp_path / "usr" / "sbin" / "runc") == "arm64"
    assert "containers/onboot/000-metadata/config.json" in names
    assert machines.kernel_arch(arm64_media.prefix.with_name("media-arm64-kernel")) == "arm64"


@pytest.mark.arm64
def test_arm64_efi_media_hold_grub_for_arm64(arm64_media: Built, tmp_path: Path) -> None:
    """BOOTAA64.EFI (an AArch64 PE) on the EFI disk, made from grub-efi-arm64-bin's modules at the host
    GRUB's version, unpacked into the store; the loader's command line names the arm64 console."""
    from buildlib.outputs import grub_modules

    disk = arm64_media.prefix.with_name("media-arm64-efi.img")
    loader = tmp_path / "BOOTAA64.EFI"
    subprocess.run(["mcopy", "-i", f"{disk}@@1M", "::/EFI/BOOT/BOOTAA64.EFI", str(loader)], check=True)
    data = loader.read_bytes()
    pe = int.from_bytes(data[0x3C:0x40], "little")
    assert data[pe : pe + 4] == b"PE\0\0" and data[pe + 4 : pe + 6] == (0xAA64).to_bytes(2, "little")
    assert b"console=ttyAMA0" in data and b"ttyS0" not in data
    version = grub_modules.host_grub_version()
    assert (arm64_media.cache / "tools" / f"grub-arm64-efi-{version}" / "moddep.lst").is_file()
    for medium in ("media-arm64-efi.iso", "media-arm64-efi.img", "media-arm64-efi.qcow2"):
        assert machines.medium_arch(arm64_media.prefix.with_name(medium)) == "arm64"
    assert arm64_media.prefix.with_name("media-arm64-cmdline").read_text() == "console=ttyAMA0 quiet"


@pytest.mark.arm64
def test_a_bios_format_is_refused_for_arm64(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(tmp_path / "cache"), "build", "--arch", "arm64"]
    command += ["--dir", str(tmp_path), "-f", "kernel+initrd,qcow2-bios", str(SPECS / "minimal.yml")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "-f qcow2-bios" in line and "arm64" in line and "qcow2-efi" in line
    assert not list(tmp_path.glob("minimal-arm64*"))  # refused before anything was built


@pytest.mark.arm64
@pytest.mark.boot
@pytest.mark.parametrize(
    "medium", ["-squashfs.img", "-erofs.img", ".iso"], ids=["kernel+squashfs", "kernel+erofs", "kernel+iso"]
)
def test_arm64_kernel_and_root_image_formats_boot(arm64_media: Built, medium: str) -> None:
    """The kernel and the boot initrd, with the root as a read-only image on a disk under a tmpfs overlay."""
    console = _booted_aarch64(_run_arm64(arm64_media, arm64_media.prefix.with_name("media-arm64" + medium)))
    assert "media: root is overlay" in console


@pytest.mark.arm64
@pytest.mark.boot
@pytest.mark.parametrize("suffix", ["-efi.iso", "-efi.img", "-efi.qcow2"], ids=["iso-efi", "raw-efi", "qcow2-efi"])
def test_arm64_efi_formats_boot_under_aavmf(arm64_media: Built, suffix: str) -> None:
    """No --arch: the medium's BOOTAA64.EFI chooses qemu-system-aarch64, which boots it through AAVMF."""
    console = _booted_aarch64(_run_arm64(arm64_media, arm64_media.prefix.with_name("media-arm64" + suffix)))
    assert "UEFI firmware" in console and "media: root is rootfs" in console


@pytest.mark.arm64
@pytest.mark.boot
def test_arm64_run_data_reaches_the_guest(arm64_media: Built) -> None:
    """--data's config ISO, on virtio-scsi (the virt machine has no IDE), is found by components/metadata."""
    console = _booted_aarch64(_run_arm64(arm64_media, arm64_media.prefix, "--data", "arm64 instance data"))
    assert "metadata: userdata from CDROM /dev/sr0" in console
    assert "userdata: arm64 instance data" in console


@pytest.mark.arm64
def test_arm64_media_are_reproducible(arm64_media: Built) -> None:
    """The same build again with the audit: nothing runs, and every part and output recomputed aside
    (GRUB's BOOTAA64.EFI included) has the bytes the first build wrote (else an AuditError)."""
    again = build(
        ARM64_MEDIA_SPECS,
        arm64_media.cache,
        arm64_media.out_dir,
        arm64_media.name,
        arch="arm64",
        formats=ARM64_FORMATS,
        size=128 << 20,
        audit=True,
    )
    assert again.report.executed == ()


@pytest.mark.arm64
def test_verify_rebuilds_arm64_efi_media_without_the_archive(
    arm64_media: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fresh store of `verify` gets the GRUB modules .deb beside the pinned ones: an arm64 EFI
    medium rebuilds bit for bit with the archive out of reach (apt through a proxy that refuses)."""
    from buildlib import tasks
    from buildlib.tasks import verify

    with socket.socket() as dead:  # a port nothing listens on: every apt request fails at once
        dead.bind(("127.0.0.1", 0))
        proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    monkeypatch.setenv("http_proxy", proxy)
    monkeypatch.setenv("https_proxy", proxy)
    options = tasks.BuildOptions(
        cache=arm64_media.cache,
        out_dir=arm64_media.out_dir,
        name=arm64_media.name,
        arch="arm64",
        formats=("iso-efi",),
        size=128 << 20,
    )
    report = verify.verify(list(ARM64_MEDIA_SPECS), options, COMPONENTS, work=tmp_path)
    assert report.ok, report.to_json()
    assert "media-arm64-efi.iso" in [r.name for r in report.files]
