"""Partition tables written straight into a disk image file: an MBR, or a GPT with its protective MBR.

No loop device and no root: the tables are a few sectors at known places. Ids (the MBR disk signature,
the GPT disk and partition GUIDs) are passed in, derived by the caller from the content key.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from pathlib import Path

SECTOR = 512
GPT_ENTRIES = 128
GPT_ENTRY_SIZE = 128
GPT_TABLE_SECTORS = GPT_ENTRIES * GPT_ENTRY_SIZE // SECTOR  # 32
ESP_TYPE = uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
MBR_FAT16_LBA = 0x0E
MBR_FAT32_LBA = 0x0C
MBR_PROTECTIVE = 0xEE


def _chs(lba: int) -> bytes:
    """LBA as the legacy cylinder/head/sector triple (255 heads, 63 sectors), capped as the spec says."""
    heads, sectors = 255, 63
    cylinder = lba // (heads * sectors)
    if cylinder > 1023:
        return b"\xfe\xff\xff"
    head = (lba // sectors) % heads
    sector = lba % sectors + 1
    return bytes([head, ((cylinder >> 2) & 0xC0) | sector, cylinder & 0xFF])


def _mbr_entry(bootable: bool, kind: int, first: int, count: int) -> bytes:
    return (
        bytes([0x80 if bootable else 0])
        + _chs(first)
        + bytes([kind])
        + _chs(first + count - 1)
        + struct.pack("<II", first, min(count, 0xFFFFFFFF))
    )


def write_mbr(disk: Path, boot_code: bytes, signature: bytes, partitions: list[tuple[bool, int, int, int]]) -> None:
    """Sector 0: `boot_code` (at most 440 bytes), the disk signature and up to four (bootable, type,
    first sector, sector count) partitions."""
    if len(boot_code) > 440 or len(signature) != 4 or len(partitions) > 4:
        raise ValueError("an MBR has 440 bytes of code, a 4-byte signature and four partitions")
    table = b"".join(_mbr_entry(*p) for p in partitions).ljust(64, b"\0")
    sector = boot_code.ljust(440, b"\0") + signature + b"\0\0" + table + b"\x55\xaa"
    _pwrite(disk, sector, 0)


def write_gpt(disk: Path, disk_guid: uuid.UUID, partitions: list[tuple[uuid.UUID, uuid.UUID, int, int, str]]) -> None:
    """A protective MBR, the primary GPT after it and the backup GPT at the end of the disk.

    `partitions` are (type GUID, partition GUID, first sector, last sector inclusive, name)."""
    total = disk.stat().st_size // SECTOR
    entries = b"".join(
        type_guid.bytes_le
        + part_guid.bytes_le
        + struct.pack("<QQQ", first, last, 0)
        + name.encode("utf-16-le").ljust(72, b"\0")
        for type_guid, part_guid, first, last, name in partitions
    ).ljust(GPT_ENTRIES * GPT_ENTRY_SIZE, b"\0")
    entries_crc = zlib.crc32(entries)
    first_usable = 2 + GPT_TABLE_SECTORS
    last_usable = total - 2 - GPT_TABLE_SECTORS
    write_mbr(disk, b"", b"\0\0\0\0", [(False, MBR_PROTECTIVE, 1, total - 1)])

    def header(current: int, backup: int, table: int) -> bytes:
        fields = [b"EFI PART", 0x00010000, 92, 0, 0, current, backup, first_usable, last_usable]
        head = struct.pack("<8sIIIIQQQQ", *fields) + disk_guid.bytes_le
        head += struct.pack("<QIII", table, GPT_ENTRIES, GPT_ENTRY_SIZE, entries_crc)
        crc = zlib.crc32(head)
        return head[:16] + struct.pack("<I", crc) + head[20:]

    _pwrite(disk, header(1, total - 1, 2), SECTOR)
    _pwrite(disk, entries, 2 * SECTOR)
    backup_table = total - 1 - GPT_TABLE_SECTORS
    _pwrite(disk, entries, backup_table * SECTOR)
    _pwrite(disk, header(total - 1, 1, backup_table), (total - 1) * SECTOR)


def _pwrite(path: Path, data: bytes, offset: int) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
