"""`distrokit doctor`: which host tools distrokit drives are missing, the Debian packages that bring
them and the one apt-get line that installs them, and whether KVM can run guests here (and why not).

`needed` tools are what building and booting the default formats takes; the others serve one format
or one command each, named in `used_for`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..guest import runner

SBIN = ("/usr/sbin", "/sbin")


@dataclass(frozen=True)
class HostTool:
    probe: str  # an executable on PATH (or in sbin), or an absolute path of a file the package installs
    package: str  # the Debian package
    used_for: str
    needed: bool = False


TOOLS = (
    HostTool("apt-get", "apt", "fetching the Debian packages components are built from", True),
    HostTool("dpkg-deb", "dpkg", "unpacking those packages (nothing is installed)", True),
    HostTool("busybox", "busybox-static", "the applet links of busybox-based components", True),
    HostTool("readelf", "binutils", "the libraries a component's programs link", True),
    HostTool("skopeo", "skopeo", "pulling and pushing registry images", True),
    HostTool("qemu-system-x86_64", "qemu-system-x86", "`distrokit run` of amd64 systems", True),
    HostTool("xorriso", "xorriso", "ISO formats and `run --data` (the config ISO)", True),
    HostTool("qemu-img", "qemu-utils", "qcow2, vhd and vmdk formats, `run --disk`"),
    HostTool("qemu-system-aarch64", "qemu-system-arm", "`distrokit run` of arm64 systems"),
    HostTool("/usr/share/AAVMF/AAVMF_CODE.fd", "qemu-efi-aarch64", "booting arm64 EFI media"),
    HostTool("/usr/share/ovmf/OVMF.fd", "ovmf", "`run --uefi` and amd64 EFI media"),
    HostTool("/usr/lib/ISOLINUX/isolinux.bin", "isolinux", "the iso-bios and iso-efi-initrd formats"),
    HostTool("syslinux", "syslinux", "the raw-bios, qcow2-bios, vhd, vmdk and gcp formats"),
    HostTool("/usr/lib/syslinux/modules/bios/ldlinux.c32", "syslinux-common", "BIOS boot loaders"),
    HostTool("mcopy", "mtools", "FAT file systems of EFI and BIOS disks"),
    HostTool("mkfs.vfat", "dosfstools", "FAT file systems of EFI and BIOS disks"),
    HostTool("grub-mkimage", "grub-efi-amd64-bin", "EFI formats (GRUB)"),
    HostTool("/usr/lib/grub/i386-pc/boot.img", "grub-pc-bin", "GRUB for BIOS"),
    HostTool("sqfstar", "squashfs-tools", "the kernel+squashfs format"),
    HostTool("mkfs.erofs", "erofs-utils", "the kernel+erofs format"),
    HostTool("fakeroot", "fakeroot", "kernel+erofs and kernel+iso without root"),
    HostTool("lz4", "lz4", "`build --decompress-kernel`"),
    HostTool("dot", "graphviz", "`distrokit graph -o FILE.svg`"),
    HostTool("buildah", "buildah", "`pkg build` of a LinuxKit package folder (build.yml + Dockerfile)"),
    HostTool("qemu-aarch64-static", "qemu-user-static", "arm64 RUN steps of `pkg build --platforms linux/arm64`"),
)


@dataclass(frozen=True)
class Finding:
    tool: HostTool
    found: str | None  # where it is, None when missing


@dataclass(frozen=True)
class Checkup:
    findings: tuple[Finding, ...]
    kvm: bool
    kvm_reason: str

    @property
    def missing(self) -> tuple[HostTool, ...]:
        return tuple(f.tool for f in self.findings if f.found is None)

    @property
    def missing_needed(self) -> tuple[HostTool, ...]:
        return tuple(tool for tool in self.missing if tool.needed)

    def apt_line(self) -> str:
        """The one command that installs every missing package ("" when nothing is missing)."""
        packages = sorted({tool.package for tool in self.missing})
        return f"apt-get install -y --no-install-recommends {' '.join(packages)}" if packages else ""


def locate(probe: str) -> str | None:
    if probe.startswith("/"):
        return probe if Path(probe).exists() else None
    return shutil.which(probe) or next((f"{d}/{probe}" for d in SBIN if os.access(f"{d}/{probe}", os.X_OK)), None)


def checkup(kvm: bool = True) -> Checkup:
    """Every host tool looked for; KVM probed when `kvm` (it starts QEMU for up to 2 s)."""
    findings = tuple(Finding(tool, locate(tool.probe)) for tool in TOOLS)
    usable, reason = runner.kvm_status() if kvm else (False, "not probed")
    return Checkup(findings, usable, reason)
