"""buildlib.guest.instance: the state folder's record and disks, and the errors of `run --state/--stop/--detached`.

The detached boot itself (reachable, then stopped cleanly) is in test_guest.py, with ssh.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from buildlib import cli
from buildlib.cli.run import instance_settings
from buildlib.errors import BadInput
from buildlib.guest import instance
from buildlib.guest.console import Console
from buildlib.guest.runner import Instance, instance_args, prepare_instance


def test_disks_without_a_file_live_in_the_state_folder(tmp_path: Path) -> None:
    state = instance.StateDir(tmp_path)
    placed = instance.place_disks(("size=64M", "format=raw,size=1M", "mine.img,size=2G"), state)
    assert placed == (
        f"{tmp_path}/disk0.qcow2,size=64M",
        f"{tmp_path}/disk1.img,format=raw,size=1M",
        "mine.img,size=2G",
    )


def test_the_record_remembers_the_whole_instance(tmp_path: Path) -> None:
    state = instance.StateDir(tmp_path / "st")
    assert instance.recall(state) == instance.Recorded()
    state.create()
    recorded = instance.Recorded(
        "/out/sshd", ("2222:22",), (f"{tmp_path}/disk0.qcow2,size=64M",), data=True, boot=("iso", "uefi"),
        firmware="/fw.fd", arch="amd64", mem="1G", cpus=2, networking="user",
    )  # fmt: skip
    instance.remember(state, recorded)
    assert instance.recall(state) == recorded
    state.record.write_text('{"prefix": "/out/old", "publish": ["1:2"], "disks": []}')  # an older record
    assert instance.recall(state) == instance.Recorded("/out/old", ("1:2",))
    state.record.write_text("{broken")
    with pytest.raises(BadInput, match="instance.json"):
        instance.recall(state)


def _settings(tmp_path: Path, recorded: instance.Recorded, *argv: str) -> instance.Recorded:
    args = cli.parser(["run", *argv]).parse_args(["run", *argv])
    state = instance.StateDir(tmp_path / "st")
    prefix = Path(args.path or recorded.prefix)
    return instance_settings(args, recorded, prefix, state)


def test_a_run_by_its_state_folder_alone_is_the_recorded_one(tmp_path: Path) -> None:
    recorded = instance.Recorded(
        str(tmp_path / "out/sshd"), ("2222:22",), (f"{tmp_path}/st/disk0.qcow2,size=64M",), data=True,
        boot=("iso", "uefi"), firmware="/fw.fd", arch="amd64", mem="1G", cpus=2, networking="user",
    )  # fmt: skip
    assert _settings(tmp_path, recorded, "--state", "st") == recorded
    given = _settings(tmp_path, recorded, "--state", "st", "--kernel", "--cpus", "1", "--publish", "3333:22")
    assert (given.boot, given.cpus, given.publish, given.mem) == (("kernel", "uefi"), 1, ("3333:22",), "1G")
    assert _settings(tmp_path, recorded, "--state", "st", "--networking", "none").publish == ()


def test_another_artefact_does_not_inherit_the_recorded_boot_mode(tmp_path: Path) -> None:
    recorded = instance.Recorded(str(tmp_path / "out/sshd"), boot=("iso", "uefi"), firmware="/fw.fd", arch="arm64")
    other = _settings(tmp_path, recorded, str(tmp_path / "out/other"), "--state", "st")
    assert (other.boot, other.firmware, other.arch, other.mem, other.cpus) == ((), None, None, "512M", 1)
    assert not other.data


def test_a_gone_data_iso_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="data.iso is gone: give the instance's --data"):
        prepare_instance(Instance(state=tmp_path / "st", data_iso=tmp_path / "st" / "data.iso"))
    assert "/st/data.iso" in " ".join(instance_args(Instance(data_iso=Path("/st/data.iso"))))


def test_a_stale_pid_file_is_no_running_instance(tmp_path: Path) -> None:
    state = instance.StateDir(tmp_path)
    assert instance.running_pid(state) is None
    state.pidfile.write_text(f"{os.getpid()}\n")  # alive, but not a QEMU of this folder
    assert instance.running_pid(state) is None
    instance.refuse_if_running(state)
    with pytest.raises(BadInput, match="no instance runs there"):
        instance.stop(state)


def test_detached_needs_a_state_folder() -> None:
    with pytest.raises(BadInput, match="--state"):
        instance_args(Instance(console=Console.DETACHED))
    assert "-qmp" in instance_args(Instance(state=Path("/st")))


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["run", "--stop"], "--state DIR"),
        (["run", "--state", str(tmp_path / "new"), "--stop"], "no instance runs there"),
        (["run", "--state", str(tmp_path / "empty")], "give the output to boot"),
        (["run", str(tmp_path / "none"), "--qemu", str(tmp_path / "no-qemu")], "--qemu"),
        (["run", str(tmp_path / "none"), "--data-file", str(tmp_path / "missing.json")], "--data-file"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    with pytest.raises(SystemExit) as exited:  # argparse's own check: one of the two
        cli.main(["run", "x", "--data", "a", "--data-file", "b"])
    assert exited.value.code == 2
