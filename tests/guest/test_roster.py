"""buildlib.guest.roster and reattach's keys: the instances `ps` lists, and the escapes of `console DIR`.
A running instance listed and attached to is booted in test_guest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from buildlib import cli
from buildlib.guest import instance, reattach, roster


def test_the_roster_lists_state_folders_and_drops_gone_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cli.main(["ps"]) == 0 and "no instances" in capsys.readouterr().err
    states = [instance.StateDir(tmp_path / name) for name in ("a", "b")]
    for state in states:
        state.create()
        instance.remember(state, instance.Recorded(f"/out/{state.path.name}", ("2222:22",)))
        roster.enlist(state)
        roster.enlist(state)  # again: still one entry
    assert [item.state for item in roster.listed()] == [state.path for state in states]
    assert cli.main(["ps"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "state\tstatus\tpid\tboots\tports",
        f"{tmp_path}/a\tstopped\t-\t/out/a\t2222:22",
        f"{tmp_path}/b\tstopped\t-\t/out/b\t2222:22",
    ]
    shutil.rmtree(states[0].path)
    assert [item.state for item in roster.listed()] == [states[1].path]
    assert len(list(roster.roster_dir().iterdir())) == 1  # the gone folder's entry is pruned


def test_console_keys_detach_on_ctrl_a_x_only_on_a_terminal() -> None:
    keys = reattach.Keys(escapes=True)
    assert keys.feed(b"ls\r") == (b"ls\r", False)
    assert keys.feed(b"a\x01") == (b"a", False)  # Ctrl-A waits for the next key
    assert keys.feed(b"\x01") == (b"\x01", False)  # Ctrl-A Ctrl-A: one Ctrl-A
    assert keys.feed(b"\x01c") == (b"\x01c", False)  # not an escape: both go
    assert keys.feed(b"q\x01x") == (b"q", True)
    assert reattach.Keys(escapes=False).feed(b"\x01x") == (b"\x01x", False)  # a pipe passes bytes as they are


def test_console_of_a_folder_with_no_instance_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["console", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"distrokit: error: {tmp_path}: no instance runs there (start it with `distrokit run --state {tmp_path}`)"
    )
