"""format, mountie and extend as LinuxKit's cases 040_packages/005_extend and 006_format_mount call them,
in one spec (tests/specs/linuxkit-format-extend.yml) booted twice with five disks: three blank ones
formatted in the guest (ext4 on dos by device; btrfs and xfs on gpt, auto-detected), one made on the host
with an ext4 partition smaller than the disk and a known UUID (extend grows it on the first boot, mountie
finds it by -uuid), and one with an old partition table that `format -force` replaces. Between the boots
the three formatted disks grow, and extend grows their partitions and file systems to fill them.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from bootkit import boot_path
from conftest import Built, build

from buildlib.outputs.partition import write_mbr

TEST_SPECS = Path(__file__).resolve().parents[1] / "specs"
MIB = 1 << 20
UUID = "5e1f2d3c-4b5a-4978-8695-a4b3c2d1e0f9"  # the spec's `mountie -uuid` names it
CASES = ["ext4-dos-label", "btrfs-gpt-device", "xfs-gpt-label", "ext4-uuid", "force-gpt", "by-uuid-links"]
LINUX, FAT32_LBA = 0x83, 0x0C


def small_ext4_disk(folder: Path) -> Path:
    """A 64 MiB raw disk whose one Linux partition (and its ext4, holding `bar`) ends at 33 MiB."""
    content = folder / "content"
    content.mkdir()
    (content / "bar").write_text("made on the host\n")
    part = folder / "part.img"
    mkfs = ["mke2fs", "-q", "-F", "-t", "ext4", "-U", UUID, "-L", "lkuuid", "-d", str(content), str(part), "32M"]
    subprocess.run(mkfs, check=True, env={"PATH": "/usr/sbin:/sbin:/usr/bin:/bin", "E2FSPROGS_FAKE_TIME": "1"})
    disk = folder / "uuid.img"
    with disk.open("wb") as out:
        out.truncate(64 * MIB)
        out.seek(MIB)
        out.write(part.read_bytes())
    write_mbr(disk, b"", b"dkit", [(False, LINUX, MIB // 512, 32 * MIB // 512)])
    return disk


def old_table_disk(folder: Path) -> Path:
    """A 64 MiB raw disk with a FAT partition in its table: not blank, so only -force formats it."""
    disk = folder / "old.img"
    with disk.open("wb") as out:
        out.truncate(64 * MIB)
    write_mbr(disk, b"", b"old!", [(False, FAT32_LBA, 2048, 8192)])
    return disk


def verdicts(console: str) -> dict[str, str]:
    return dict(re.findall(r"format-mount: (\S+) (PASSED|FAILED)", console))


def sizes(console: str) -> dict[str, int]:
    return {name: int(mib) for name, mib in re.findall(r"format-mount: size (\S+) (\d+) MiB", console)}


def boot(built: Built, disks: list[str]) -> str:
    args = [arg for disk in disks for arg in ("--disk", disk)]
    return boot_path(built, built.prefix, *args, "--networking", "none")


@pytest.mark.boot
def test_format_mount_and_extend_as_linuxkit_calls_them(shared_cache: Path, tmp_path: Path) -> None:
    built = build(TEST_SPECS / "linuxkit-format-extend.yml", shared_cache, tmp_path / "out")
    grown = [tmp_path / name for name in ("ext4.qcow2", "btrfs.qcow2", "xfs.qcow2")]
    disks = [f"{grown[0]},size=64M", f"{grown[1]},size=256M", f"{grown[2]},size=384M"]
    disks += [f"{small_ext4_disk(tmp_path)},format=raw", f"{old_table_disk(tmp_path)},format=raw"]

    first = boot(built, disks)
    assert verdicts(first) == dict.fromkeys(CASES, "PASSED"), first[-4000:]
    assert "format: -type zfs is not supported" in first  # bad input: one line, and the boot goes on
    assert "extend: grew /dev/vdd1 (ext4, dos)" in first
    before = sizes(first)
    assert before["lkuuid"] > 50, before  # 32 MiB made on the host, grown to the 64 MiB disk

    for disk, size in zip(grown, ("128M", "384M", "512M"), strict=True):
        subprocess.run(["qemu-img", "resize", "-q", str(disk), size], check=True)
    second = boot(built, [disk.split(",")[0] for disk in disks[:3]] + disks[3:])
    assert verdicts(second) == dict.fromkeys(CASES, "PASSED"), second[-4000:]
    for name in ("lkext4", "lkbtrfs", "lkxfs", "lkuuid"):
        assert f"format-mount: kept /var/{name}/marker" in second  # format left every formatted disk alone
    after = sizes(second)
    for name, more in (("lkext4", 60), ("lkbtrfs", 120), ("lkxfs", 120)):
        assert after[name] >= before[name] + more, (name, before, after)
    assert "extend: grew /dev/vdb1 (btrfs, gpt)" in second and "extend: grew /dev/vdc1 (xfs, gpt)" in second
