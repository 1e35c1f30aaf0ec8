"""distrokit run's LinuxKit options, as QEMU arguments: --disk, --networking and --publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib.errors import BadInput
from buildlib.guest.runner import Disk, Publish, RunOptions, create_disks, disk_args, network_args


def test_disk_defaults_and_options() -> None:
    assert Disk.parse("data.img") == Disk(Path("data.img"), "1G", "qcow2")
    assert Disk.parse("d.raw,size=64M,format=raw") == Disk(Path("d.raw"), "64M", "raw")
    assert Disk.parse("file=d.img,size=2G") == Disk(Path("d.img"), "2G", "qcow2")
    for bad in ("", "d,size=lots", "d,format=vmdk", "d,colour=blue"):
        with pytest.raises(BadInput, match="--disk"):
            Disk.parse(bad)
    assert disk_args((Disk(Path("a")), Disk(Path("b"), format="raw"))) == [
        "-drive",
        "file=a,format=qcow2,if=virtio,index=0,media=disk",
        "-drive",
        "file=b,format=raw,if=virtio,index=1,media=disk",
    ]


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
