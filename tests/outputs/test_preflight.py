"""buildlib.outputs.preflight: every spec mistake `build` rejects before pulling; `validate` uses the same words."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COMPONENTS

from buildlib import cli

HEAD = f'kernel:\n  image: "@pkg:{COMPONENTS}/kernel"\ninit:\n  - "@pkg:{COMPONENTS}/init"\n'
BUSYBOX = f'"@pkg:{COMPONENTS}/busybox"'

MISTAKES = {
    "undeclared-volume": (
        HEAD + f"onboot:\n  - name: a\n    image: {BUSYBOX}\n    binds:\n      - data:/data\n",
        "data",
    ),
    "undeclared-mount": (
        HEAD + f"onboot:\n  - name: a\n    image: {BUSYBOX}\n    mounts:\n"
        "      - {type: bind, source: data, destination: /d}\n",
        "does not declare",
    ),
    "rw-bind-on-ro-volume": (
        HEAD + f"onboot:\n  - name: a\n    image: {BUSYBOX}\n    binds:\n      - vol:/data\n"
        "volumes:\n  - name: vol\n    readonly: true\n",
        "read-only",
    ),
    "missing-files-source": (HEAD + "files:\n  - path: etc/x\n    source: /nonexistent/distrokit/x.txt\n", "x.txt"),
    "unknown-file-owner": (HEAD + "files:\n  - path: etc/x\n    contents: hi\n    uid: nobody-here\n", "nobody-here"),
    "missing-kernel": (f'init:\n  - "@pkg:{COMPONENTS}/init"\n', "`kernel`"),
    "empty-spec": ("", "empty"),
}


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_validate_rejects_what_build_rejects_in_the_same_words(
    mistake: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = MISTAKES[mistake]
    spec = tmp_path / f"{mistake}.yml"
    spec.write_text(text)
    assert cli.main(["validate", str(spec)]) == 2
    validated = capsys.readouterr().err
    out = tmp_path / "out"
    assert cli.main(["--cache", str(tmp_path / "store"), "build", str(spec), "--dir", str(out)]) == 2
    built = capsys.readouterr().err
    assert expected in validated
    assert validated == built
    assert validated.startswith("distrokit: error: ") and validated.count("distrokit: error:") == 1
    assert not out.exists()
    # rejected before any task ran: nothing was pulled or built into the store
    assert not (tmp_path / "store" / "blobs").exists()


def test_validate_checks_the_formats_asked_for(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "nokernel.yml"
    spec.write_text(MISTAKES["missing-kernel"][0])
    assert cli.main(["validate", "-f", "tar", str(spec)]) == 0
    assert cli.main(["validate", str(spec)]) == 2
    assert "-f tar" in capsys.readouterr().err


def test_a_good_spec_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", str(COMPONENTS.parent / "specs" / "sshd.yml")]) == 0
    assert "valid" in capsys.readouterr().err


def test_bios_formats_are_for_x86_only(tmp_path: Path) -> None:
    """Each BIOS format asked for arm64 is one line naming it and the arch; the EFI ones pass."""
    from buildlib import outputs
    from buildlib.outputs import preflight
    from buildlib.spec.model import load_spec

    spec_file = tmp_path / "s.yml"
    spec_file.write_text(HEAD)
    spec = load_spec([spec_file])
    bios = ["iso-bios", "iso-efi-initrd", "raw-bios", "qcow2-bios", "vhd", "dynamic-vhd", "vmdk", "gcp", "aws"]
    efi = ["kernel+initrd", "tar", "kernel+squashfs", "kernel+erofs", "kernel+iso", "iso-efi", "raw-efi", "qcow2-efi"]
    assert preflight.problems(spec, bios + efi, "amd64") == []
    found = preflight.problems(spec, bios + efi, "arm64")
    assert [line.split(":")[0] for line in found] == [f"-f {name}" for name in bios]
    assert all("arm64" in line and "\n" not in line for line in found)
    assert outputs.arch_problem("raw-efi", "arm64") is None
    assert "no EFI loader for riscv64" in (outputs.arch_problem("raw-efi", "riscv64") or "")
