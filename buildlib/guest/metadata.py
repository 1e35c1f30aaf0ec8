"""Instance data for a guest: the config ISO `run --data/--data-file` attach as a CD-ROM.

The ISO is what LinuxKit's `metadata` package (and ours, components/metadata) reads: volume label
`cidata` (cloud-init's NoCloud convention, which LinuxKit's cdrom provider looks for), the data in
`user-data` and, for older readers, the same bytes in `config`. It is built with xorriso, without
root, and every date in it is the build epoch, so the same data gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..epoch import build_epoch
from ..errors import BadInput, BootError

XORRISO = "xorriso"
VOLUME_LABEL = "cidata"
DATA_FILES = ("user-data", "config")
# The ISO is attached on a virtio-scsi controller as a SCSI CD-ROM (sr0 in the guest): the cloud
# kernel has virtio_scsi and sr_mod as modules, and no IDE driver is needed.
CDROM_ID = "cidata"


def read_data(text: str | None, file: Path | None) -> bytes | None:
    """The bytes of `--data STRING` or `--data-file PATH` (at most one), or None without either."""
    if text is not None and file is not None:
        raise BadInput("give --data or --data-file, not both")
    if file is None:
        return None if text is None else text.encode()
    try:
        return file.read_bytes()
    except OSError as error:
        raise BadInput(f"--data-file {file}: {error.strerror or error}") from None


def write_config_iso(data: bytes, target: Path) -> Path:
    """Write the config ISO holding `data` to `target`, atomically; the same data gives the same bytes."""
    if shutil.which(XORRISO) is None:
        raise BadInput(f"{XORRISO} is not installed: run `apt-get install xorriso` (scripts/setup.sh does)")
    epoch = build_epoch()
    stamp = time.strftime("%Y%m%d%H%M%S00", time.gmtime(epoch))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".config-iso.", dir=target.parent) as scratch:
        tree = Path(scratch) / "tree"
        tree.mkdir()
        for name in DATA_FILES:
            (tree / name).write_bytes(data)
            os.utime(tree / name, (epoch, epoch))
        os.utime(tree, (epoch, epoch))
        partial = Path(scratch) / "config.iso"
        command = [XORRISO, "-as", "mkisofs", "-quiet", "-o", str(partial), "-V", VOLUME_LABEL, "-J", "-r"]
        command += [f"--modification-date={stamp}", "--set_all_file_dates", "set_to_mtime", str(tree)]
        made = subprocess.run(command, capture_output=True)
        if made.returncode != 0:
            detail = made.stderr.decode(errors="replace").strip()[-400:]
            raise BootError(f"xorriso could not write the config ISO {target}: {detail}")
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    return target


def cdrom_args(iso: Path) -> list[str]:
    """QEMU arguments attaching `iso` read-only as a SCSI CD-ROM on its own virtio-scsi controller."""
    return [
        "-device",
        "virtio-scsi-pci,id=cidata-scsi",
        "-drive",
        f"file={iso},format=raw,if=none,id={CDROM_ID},media=cdrom,readonly=on",
        "-device",
        f"scsi-cd,drive={CDROM_ID},bus=cidata-scsi.0",
    ]
