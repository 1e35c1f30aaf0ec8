"""buildlib.outputs: every LinuxKit format from one shared build, read back with the tools that consume
them (qemu-img, GNU tar, xorriso); -f parsing, clashes, --size; kernel.ucode in the tar and the initrd."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import pytest
from conftest import MEDIA_SIZE, REPO, SPECS, Built, build, media_formats
from layerkit import M, store_layer

from buildlib import outputs
from buildlib.debian.recipes import PkgResolver
from buildlib.errors import BadInput
from buildlib.outputs.cpio import CpioWriter
from buildlib.outputs.partition import ESP_TYPE, SECTOR
from buildlib.rootfs.layers import FILE, Entry
from buildlib.spec.model import load_spec
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store


def sibling(built: Built, suffix: str) -> Path:
    return built.prefix.with_name(built.name + suffix)


def test_every_format_writes_linuxkit_file_names(media_build: tuple[Built, Built]) -> None:
    main, alternates = media_build
    for built, names in zip(media_build, media_formats(), strict=True):
        for name in names:
            for path in outputs.get_format(name).targets(built.prefix):
                assert path.is_file() and path.stat().st_size > 0, f"{name}: {path.name} missing"
    assert sorted(p.name for p in main.out_dir.iterdir() if p.name.startswith("media-alt")) == [
        "media-alt.iso",
        "media-alt.tar",
        "media-alt.vhd",
    ]
    ran = set(main.report.executed)
    assert {"output:media/stage-root", "output:media/stage-bios-disk", "output:media/stage-efi-disk"} <= ran
    assert len([t for t in ran if t.startswith("output:media/stage-root")]) == 1  # one merge for five formats


def test_a_files_change_repacks_every_format_from_the_stored_segments(
    minimal_build: Built, spec_copy: Path, tmp_path: Path
) -> None:
    formats = ("kernel+initrd", "tar", "iso-efi-initrd", "kernel+squashfs", "raw-bios")
    first = build(spec_copy, minimal_build.cache, tmp_path, name="repack", formats=formats, size=64 << 20)
    assert "output:repack/stage-root" in first.report.executed
    spec_copy.write_text(spec_copy.read_text().replace('echo "== uname -a"', 'echo "== kernel"'))
    again = build(spec_copy, minimal_build.cache, tmp_path, name="repack", formats=formats, size=64 << 20)
    stages = {f"output:repack/stage-{name}" for name in ("root", "initrd", "bios-disk")}
    assert set(again.report.executed) == {"part:repack/files", *stages, *(f"output:repack/{f}" for f in formats)}
    assert "output:repack/boot" in again.report.up_to_date  # kernel, cmdline and boot initrd are unchanged
    assert not [task for task in again.report.executed if task.startswith(("layer:", "image:", "component:"))]


def qemu_img_info(path: Path, fmt: str) -> dict[str, object]:
    """qemu-img's reading of a disk as `fmt` (a fixed VHD has no header to probe: it must be named)."""
    done = subprocess.run(["qemu-img", "info", "-f", fmt, "--output=json", str(path)], capture_output=True, check=True)
    info = json.loads(done.stdout)
    assert isinstance(info, dict)
    return info


def test_disk_formats_are_what_qemu_img_says(media_build: tuple[Built, Built]) -> None:
    main, alternates = media_build
    expected = {
        "-bios.img": "raw",
        "-efi.img": "raw",
        ".raw": "raw",
        ".qcow2": "qcow2",
        "-efi.qcow2": "qcow2",
        ".vmdk": "vmdk",
        ".vhd": "vpc",
    }
    for suffix, fmt in expected.items():
        info = qemu_img_info(sibling(main, suffix), fmt)
        assert (info["format"], info["virtual-size"]) == (fmt, MEDIA_SIZE), suffix
    dynamic = qemu_img_info(sibling(alternates, ".vhd"), "vpc")
    assert (dynamic["format"], dynamic["virtual-size"]) == ("vpc", MEDIA_SIZE)
    fixed = sibling(main, ".vhd")
    assert fixed.stat().st_size == MEDIA_SIZE + 512 and fixed.read_bytes()[-512:].startswith(b"conectix")
    assert sibling(alternates, ".vhd").read_bytes()[:8] == b"conectix"  # a dynamic VHD starts with its footer
    for suffix, fmt in ((".vmdk", "vmdk"), (".qcow2", "qcow2")):  # qemu-img checks no VHD
        subprocess.run(["qemu-img", "check", "-q", "-f", fmt, str(sibling(main, suffix))], check=True)


def test_bios_disk_has_a_bootable_fat_partition_with_syslinux(media_build: tuple[Built, Built]) -> None:
    disk = sibling(media_build[0], "-bios.img")
    with open(disk, "rb") as handle:
        mbr = handle.read(SECTOR)
        assert mbr[510:] == b"\x55\xaa" and mbr[446] == 0x80
        first, count = struct.unpack("<II", mbr[454:462])
        assert first * SECTOR == 1 << 20 and (first + count) * SECTOR == MEDIA_SIZE
    listing = subprocess.run(
        ["mdir", "-a", "-b", "-i", f"{disk}@@{first * SECTOR}", "::/"], capture_output=True, text=True
    )
    names = {Path(line).name.lower() for line in listing.stdout.split()}
    assert {"kernel", "initrd.img", "syslinux.cfg", "ldlinux.sys"} <= names


def test_efi_disk_has_a_valid_gpt_with_an_esp(media_build: tuple[Built, Built]) -> None:
    disk = sibling(media_build[0], "-efi.img")
    data = disk.read_bytes()
    header = data[SECTOR : SECTOR + 92]
    assert header[:8] == b"EFI PART"
    crc = struct.unpack("<I", header[16:20])[0]
    assert zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:]) == crc
    entry = data[2 * SECTOR : 2 * SECTOR + 128]
    assert entry[:16] == ESP_TYPE.bytes_le
    assert data[-SECTOR:][:8] == b"EFI PART"  # the backup header at the last sector
    first = struct.unpack("<Q", entry[32:40])[0]
    listing = subprocess.run(
        ["mdir", "-b", "-i", f"{disk}@@{first * SECTOR}", "::/EFI/BOOT"], capture_output=True, text=True
    )
    assert "BOOTX64.EFI" in listing.stdout.upper()


def test_isos_boot_records_and_the_kernel_iso_root(media_build: tuple[Built, Built]) -> None:
    main, alternates = media_build

    def report(path: Path) -> str:
        done = subprocess.run(
            ["xorriso", "-indev", str(path), "-report_el_torito", "plain"], capture_output=True, text=True
        )
        return done.stdout + done.stderr

    assert "BIOS" in report(sibling(alternates, ".iso")) and "UEFI" not in report(sibling(alternates, ".iso"))
    assert "UEFI" in report(sibling(main, "-efi.iso")) and " BIOS " not in report(sibling(main, "-efi.iso"))
    hybrid = report(sibling(main, "-efi-initrd.iso"))
    assert "BIOS" in hybrid and "UEFI" in hybrid
    root = subprocess.run(
        ["xorriso", "-indev", str(sibling(main, ".iso")), "-lsdl", "/bin/busybox", "/etc/distrokit/boot.d/90-media"],
        capture_output=True,
        text=True,
    )
    assert "rwxr-xr-x" in root.stdout and "90-media" in root.stdout, root.stdout + root.stderr


def test_root_images_and_the_boot_initrd(media_build: tuple[Built, Built]) -> None:
    main, _ = media_build
    assert sibling(main, "-squashfs.img").read_bytes()[:4] == b"hsqs"
    assert sibling(main, "-erofs.img").read_bytes()[1024:1028] == struct.pack("<I", 0xE0F5E1E2)
    boot_initrd, initrd = sibling(main, "-boot-initrd.img"), sibling(main, "-initrd.img")
    assert 0 < boot_initrd.stat().st_size < initrd.stat().st_size  # modules and init, not the files part
    listing = subprocess.run(
        ["unsquashfs", "-l", "-d", "", str(sibling(main, "-squashfs.img"))], capture_output=True, text=True
    )
    paths = set(listing.stdout.split())
    assert {"/init", "/bin/busybox", "/etc/distrokit/boot.d/90-media"} <= paths and "/boot/kernel" not in paths


def tar_names(path: Path, mode: str = "r") -> list[str]:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        return [member.name for member in archive.getmembers()]


def test_tar_formats(media_build: tuple[Built, Built]) -> None:
    main, alternates = media_build
    assert tar_names(sibling(main, "-initrd.tar")) == ["kernel", "initrd.img", "cmdline"]
    with tarfile.open(sibling(main, "-initrd.tar")) as archive:
        initrd = archive.extractfile("initrd.img")
        assert initrd is not None and initrd.read() == sibling(main, "-initrd.img").read_bytes()
    docker = tar_names(sibling(alternates, ".tar"))
    assert len(docker) == len(set(docker)) and "Dockerfile" in docker and "boot/kernel" in docker
    with tarfile.open(sibling(alternates, ".tar")) as archive:
        dockerfile = archive.extractfile("Dockerfile")
        assert dockerfile is not None and b'ENTRYPOINT ["/bin/rc.init"]' in dockerfile.read()
    plain = tar_names(sibling(main, ".tar"))
    assert sorted(plain + ["Dockerfile"]) == sorted(docker)
    subprocess.run(["tar", "tf", str(sibling(main, ".tar"))], check=True, capture_output=True)
    with gzip.open(sibling(main, ".img.tar.gz")) as zipped, tarfile.open(fileobj=zipped) as archive:
        (member,) = archive.getmembers()
        assert member.name == "disk.raw" and member.size == MEDIA_SIZE
    head = sibling(main, ".img.tar.gz").read_bytes()[:10]
    assert head[4:8] == b"\0\0\0\0"  # no time in the gzip header


def test_the_registry_names_the_module_of_every_format_and_stage() -> None:
    """Formats and stages load their writer module on first use: FORMAT_HOMES and STAGE_HOMES must name
    the module that registers each, and nothing must register unnamed (it could not be asked for)."""
    from buildlib.outputs import formats

    homes = {**formats.FORMAT_HOMES}
    for home in sorted(set(homes.values()) | set(formats.STAGE_HOMES.values())):
        __import__(f"buildlib.outputs.{home}")
    assert set(outputs.FORMATS) == set(homes) and set(outputs.STAGES) == set(formats.STAGE_HOMES)
    assert all(outputs.FORMATS[name].write.__module__ == f"buildlib.outputs.{home}" for name, home in homes.items())
    stage_modules = {name: stage.build.__module__ for name, stage in outputs.STAGES.items()}
    assert stage_modules == {name: f"buildlib.outputs.{home}" for name, home in formats.STAGE_HOMES.items()}
    assert set(outputs.all_formats()) == set(homes)


def test_parse_formats() -> None:
    assert outputs.parse_formats(None) == ("kernel+initrd",)
    assert outputs.parse_formats(["tar,iso-efi", "vmdk", "tar"]) == ("tar", "iso-efi", "vmdk")
    with pytest.raises(BadInput, match="known formats: aws, docker"):
        outputs.parse_formats(["iso"])
    for pair, name in (
        (["tar", "docker"], "NAME.tar"),
        (["kernel+iso,iso-bios"], "NAME.iso"),
        (["vhd", "dynamic-vhd"], "NAME.vhd"),
    ):
        with pytest.raises(BadInput, match=f"both write {name}"):
            outputs.parse_formats(pair)
    assert outputs.parse_formats(["kernel+initrd,kernel+squashfs,kernel+erofs"])  # they share -kernel, -cmdline


def test_parse_size() -> None:
    assert outputs.parse_size("1024M") == outputs.parse_size("1G") == outputs.parse_size("1024") == 1 << 30
    for bad in ("0", "12X", "1500K", "-5M"):
        with pytest.raises(BadInput, match="--size"):
            outputs.parse_size(bad)


def cli(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "buildlib.cli", "--cache", str(cache), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True)


def test_cli_refuses_unknown_formats_clashes_and_a_small_size(media_build: tuple[Built, Built], tmp_path: Path) -> None:
    cache = media_build[0].cache
    spec = str(SPECS / "minimal.yml")
    unknown = cli(cache, "build", spec, "--dir", str(tmp_path), "-f", "kernel+initrd,floppy")
    assert unknown.returncode == 2 and "unknown output format 'floppy'; known formats: aws" in unknown.stderr
    clash = cli(cache, "build", spec, "--dir", str(tmp_path), "-f", "vhd", "-f", "dynamic-vhd")
    assert clash.returncode == 2 and "formats vhd and dynamic-vhd both write NAME.vhd" in clash.stderr
    small = cli(cache, "build", "-q", spec, "--dir", str(tmp_path), "-f", "raw-bios", "--size", "16M")
    assert small.returncode == 2 and "--size 16M is too small for BIOS disk formats: it needs at least" in small.stderr
    assert not (tmp_path / "minimal-bios.img").exists()


def ucode_cpio() -> bytes:
    import io

    out = io.BytesIO()
    blob = b"\x01\x00\x00\x00fake microcode" * 64
    CpioWriter(out).write_all(
        [
            Entry("kernel", "d", mode=0o755),
            Entry("kernel/x86", "d", mode=0o755),
            Entry("kernel/x86/microcode", "d", mode=0o755),
            Entry("kernel/x86/microcode/GenuineIntel.bin", FILE, size=len(blob), data=blob),
        ]
    )
    return out.getvalue()


def test_kernel_ucode_in_the_tars_and_first_in_the_initrd(minimal_build: Built, tmp_path: Path) -> None:
    """A kernel image carrying a ucode cpio: the kernel component plus a layer with /ucode.cpio."""
    store = Store(minimal_build.cache)
    spec = load_spec([SPECS / "minimal.yml"], resolve_pkg=PkgResolver())
    assert spec.kernel is not None
    kernel_ref = spec.kernel.image
    digest = store.lookup(ImageRef.parse(kernel_ref))
    assert digest is not None
    kernel = store.image_by_digest(kernel_ref, digest)
    cpio = ucode_cpio()
    extra = store_layer(store, [M("ucode.cpio", data=cpio)])
    diff_ids = [*kernel.config["rootfs"]["diff_ids"], extra.diff_id]
    config = {**kernel.config, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    layers = [(layer.digest, layer.size, layer.media_type) for layer in (*kernel.layers, extra)]
    store.write_image(ImageRef.parse("test/ucode-kernel:1"), config, layers)
    spec_file = tmp_path / "specs" / "ucode.yml"
    spec_file.parent.mkdir()
    (tmp_path / "components").symlink_to(REPO / "components")
    spec_file.write_text(
        'kernel:\n  image: test/ucode-kernel:1\n  cmdline: "console=ttyS0"\n  ucode: ucode.cpio\n'
        'init:\n  - "@pkg:../components/init"\n'
    )
    formats = ("kernel+initrd", "tar", "tar-kernel-initrd")
    built = build(spec_file, minimal_build.cache, tmp_path / "out", formats=formats)
    initrd = sibling(built, "-initrd.img").read_bytes()
    assert initrd.startswith(cpio) and len(initrd) > len(cpio)  # uncompressed, before the segments
    with tarfile.open(built.prefix.with_suffix(".tar")) as archive:
        member = archive.extractfile("boot/ucode.cpio")
        assert member is not None and member.read() == cpio
    with tarfile.open(sibling(built, "-initrd.tar")) as archive:
        assert [m.name for m in archive.getmembers()] == ["kernel", "initrd.img", "cmdline", "ucode.cpio"]
        member = archive.extractfile("ucode.cpio")
        assert member is not None and member.read() == cpio
        initrd_member = archive.extractfile("initrd.img")
        assert initrd_member is not None and initrd_member.read() == initrd
