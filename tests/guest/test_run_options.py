"""distrokit run's LinuxKit options, as QEMU arguments: --disk, --networking and --publish."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from buildlib.errors import BadInput
from buildlib.guest.runner import Disk, Publish, RunOptions, create_disks, disk_args, network_args


def test_disk_defaults_and_options() -> None:
    assert Disk.parse("data.img") == Disk(Path("data.img"), "1G", None)
    assert Disk.parse("d.raw,size=64M,format=raw") == Disk(Path("d.raw"), "64M", "raw")
    assert Disk.parse("file=d.img,size=2G") == Disk(Path("d.img"), "2G", None)
    for bad in ("", "d,size=lots", "d,format=vmdk", "d,colour=blue"):
        with pytest.raises(BadInput, match="--disk"):
            Disk.parse(bad)
    assert disk_args((Disk(Path("a")), Disk(Path("b"), format="raw"))) == [
        "-drive",
        "file=a,format=qcow2,if=virtio,index=0,media=disk",
        "-drive",
        "file=b,format=raw,if=virtio,index=1,media=disk",
    ]


def test_a_disk_without_format_takes_the_format_of_its_file(tmp_path: Path) -> None:
    """LinuxKit lets QEMU probe `--disk file=PATH`: a raw image or an ISO attaches as raw, a qcow2 as qcow2."""
    raw, iso, qcow2 = tmp_path / "data.raw", tmp_path / "cd.iso", tmp_path / "d.qcow2"
    raw.write_bytes(b"raw disk\n" + bytes(65536))
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-o", str(iso), "-V", "cidata", str(raw)], check=True, capture_output=True
    )
    create_disks((Disk(qcow2, "16M"),))
    assert [Disk.parse(f"file={path}").resolved_format() for path in (raw, iso, qcow2)] == ["raw", "raw", "qcow2"]
    assert disk_args((Disk.parse(f"file={iso}"),)) == ["-drive", f"file={iso},format=raw,if=virtio,index=0,media=disk"]
    assert Disk.parse(f"{tmp_path / 'new.img'}").resolved_format() == "qcow2", "a new file is made as qcow2"
    assert Disk.parse(f"{raw},format=qcow2").resolved_format() == "qcow2", "format= is taken as given"
    vmdk = tmp_path / "d.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "1M"], check=True)
    with pytest.raises(BadInput, match=r"d\.vmdk: it is a vmdk image; give one of raw, qcow2"):
        Disk.parse(str(vmdk)).resolved_format()


def test_missing_disks_are_created_once(tmp_path: Path) -> None:
    disk = Disk(tmp_path / "sub" / "d.qcow2", "16M")
    assert create_disks((disk,)) == [disk.path]
    assert create_disks((disk,)) == []


def test_publish_is_user_mode_on_loopback_only() -> None:
    options = RunOptions(Path("x"), publish=(Publish.parse("2222:22"), Publish.parse("5353:53/udp")))
    assert network_args(options) == [
        "-netdev",
        "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53",
        "-device",
        "virtio-net-pci,netdev=net0",
    ]
    assert network_args(RunOptions(Path("x"), networking="none")) == ["-nic", "none"]
    for bad in ("22", "0:22", "2222:22/sctp", "a:b"):
        with pytest.raises(BadInput, match="--publish"):
            Publish.parse(bad)
    with pytest.raises(BadInput, match="--networking none"):
        network_args(RunOptions(Path("x"), networking="none", publish=(Publish(1, 2),)))
