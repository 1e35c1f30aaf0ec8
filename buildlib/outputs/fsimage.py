"""kernel+squashfs and kernel+erofs: the merged root as a read-only file-system image beside the kernel.

Debian's kernel has squashfs, erofs, overlay and virtio_blk as modules, so a kernel alone cannot mount
such a root: both formats also write NAME-boot-initrd.img, the kernel-module and init segments only
(no containers, no files), whose /init mounts the image read-only under a tmpfs overlay when the
command line names it (`root=/dev/vda rootfstype=squashfs`, which `distrokit run` adds).

squashfs comes straight from the root stage's tar (sqfstar: owners, modes and times from the tar
headers). erofs-utils 1.5 reads only folders, so the tar is unpacked under fakeroot (owners and device
nodes kept without root) and mkfs.erofs runs in the same fakeroot session.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path

from .formats import BOOT_INITRD_SUFFIX, CMDLINE_SUFFIX, KERNEL_SUFFIX, BuiltParts, Format, register
from .tools import derived_uuid, run_tool, tool

SQUASHFS_OPTIONS = ("-comp", "lz4", "-no-progress", "-quiet")  # zstd or gzip took ~100 s on 2 cores, lz4 1 s


def _squashfs(parts: BuiltParts, prefix: Path) -> None:
    parts.need_kernel("kernel+squashfs")
    (target,) = SQUASHFS.own_targets(prefix)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".squashfs-") as scratch:
        image = Path(scratch) / "image"
        with open(parts.stage("root"), "rb") as tar:
            run_tool(
                ["sqfstar", *SQUASHFS_OPTIONS, *_root_dir(parts.epoch), "-mkfs-time", str(parts.epoch), str(image)],
                parts.epoch,
                stdin=tar.fileno(),
                env={"SOURCE_DATE_EPOCH": None},  # sqfstar refuses it beside -mkfs-time
            )
        image.chmod(0o644)
        image.replace(target)


def _root_dir(epoch: int) -> list[str]:
    """The image's root folder, which the tar has no entry for: sqfstar would take the clock and the
    user. sqfstar 4.5.1 ignores -root-time, so every time is the build epoch (-all-time)."""
    return ["-all-time", str(epoch), "-root-mode", "755", "-root-uid", "0", "-root-gid", "0"]


def unpacked_root_command(parts: BuiltParts, folder: Path, then: list[str]) -> list[str]:
    """A fakeroot command that unpacks the root stage into `folder` and runs `then` on it: owners,
    modes and device nodes as the tar has them, though nothing here runs as root."""
    unpack = ["tar", "-xpf", str(parts.stage("root")), "-C", str(folder), "--numeric-owner", "--same-owner"]
    settle = ["touch", "-h", "-d", f"@{parts.epoch}", str(folder)]  # the folder itself: not in the tar
    script = f"{shlex.join(unpack)} && {shlex.join(settle)} && {shlex.join(then)}"
    return ["fakeroot", "--", tool("sh"), "-c", script]


def _erofs(parts: BuiltParts, prefix: Path) -> None:
    parts.need_kernel("kernel+erofs")
    (target,) = EROFS.own_targets(prefix)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".erofs-") as scratch:
        tree, image = Path(scratch) / "root", Path(scratch) / "image"
        tree.mkdir(mode=0o755)
        tree.chmod(0o755)  # not the host's umask
        fs_uuid = str(derived_uuid(parts.root_key, "erofs"))  # not the cmdline's: see root_key
        make = [tool("mkfs.erofs"), "--quiet", "-zlz4", f"-T{parts.epoch}", f"-U{fs_uuid}", str(image), str(tree)]
        run_tool(unpacked_root_command(parts, tree, make), parts.epoch)
        image.chmod(0o644)
        image.replace(target)


SQUASHFS = register(
    Format(
        "kernel+squashfs",
        (KERNEL_SUFFIX, CMDLINE_SUFFIX, "-squashfs.img", BOOT_INITRD_SUFFIX),
        _squashfs,
        stages=("root",),
        uses_cmdline=False,
        doc="kernel, cmdline and the root as a squashfs image (booted read-only under a tmpfs overlay)",
    )
)
EROFS = register(
    Format(
        "kernel+erofs",
        (KERNEL_SUFFIX, CMDLINE_SUFFIX, "-erofs.img", BOOT_INITRD_SUFFIX),
        _erofs,
        stages=("root",),
        uses_cmdline=False,
        doc="kernel, cmdline and the root as an erofs image (booted read-only under a tmpfs overlay)",
    )
)
