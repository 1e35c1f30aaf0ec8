"""buildlib.upkeep.doctor (`distrokit doctor`): missing host tools with their Debian packages and one
apt-get line, and KVM usable or not with the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from buildlib import cli
from buildlib.upkeep import doctor


def test_on_a_set_up_machine_nothing_is_missing(capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/setup.sh installs every package doctor knows (they are one list to keep in step)."""
    setup = (Path(__file__).resolve().parents[2] / "scripts" / "setup.sh").read_text()
    assert {tool.package for tool in doctor.TOOLS if tool.package not in ("apt", "dpkg")} <= set(setup.split())
    assert doctor.checkup(kvm=False).missing == ()
    assert cli.main(["doctor"]) == 0
    err = capsys.readouterr().err
    assert "every host tool distrokit drives is installed" in err and "KVM: " in err


def test_missing_tools_are_named_with_their_packages_and_one_apt_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH; sbin and absolute files still found
    monkeypatch.setattr(doctor, "SBIN", ())
    checkup = doctor.checkup(kvm=False)
    assert {tool.probe for tool in checkup.missing} >= {"skopeo", "qemu-system-x86_64", "busybox"}
    assert "/usr/share/ovmf/OVMF.fd" not in {tool.probe for tool in checkup.missing}
    assert checkup.apt_line().startswith("apt-get install -y --no-install-recommends ")
    assert "skopeo" in checkup.apt_line().split() and "qemu-system-x86" in checkup.apt_line().split()
    assert cli.main(["doctor"]) == 1  # a tool every build needs is missing
    assert "MISSING" in capsys.readouterr().out


def test_kvm_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTROKIT_ACCEL", "tcg")
    assert doctor.checkup().kvm is False and "DISTROKIT_ACCEL=tcg" in doctor.checkup().kvm_reason
