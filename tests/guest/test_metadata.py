"""buildlib.guest.metadata (the config ISO) and components/metadata's JSON writer, run by the host's busybox.

The guest side is booted in test_guest.py and test_console.py; here the same awk program the
metadata container runs writes LinuxKit's JSON into a folder, so every case is cheap.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import COMPONENTS

from buildlib.errors import BadInput
from buildlib.guest.metadata import cdrom_args, read_data, write_config_iso

TREE = COMPONENTS / "metadata" / "userdata-tree"
needs_xorriso = pytest.mark.skipif(shutil.which("xorriso") is None, reason="needs xorriso (scripts/setup.sh)")
needs_busybox = pytest.mark.skipif(shutil.which("busybox") is None, reason="needs busybox-static (scripts/setup.sh)")


def _extract(iso: Path, name: str, target: Path) -> bytes:
    subprocess.run(
        ["xorriso", "-indev", str(iso), "-osirrox", "on", "-extract", f"/{name}", str(target)],
        check=True,
        capture_output=True,
    )
    return target.read_bytes()


@needs_xorriso
def test_config_iso_is_deterministic_and_holds_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    data = b'{"hostname": {"content": "one"}}'
    first = write_config_iso(data, tmp_path / "a" / "data.iso")
    second = write_config_iso(data, tmp_path / "b" / "data.iso")
    assert first.read_bytes() == second.read_bytes()
    assert write_config_iso(b"other", tmp_path / "c.iso").read_bytes() != first.read_bytes()
    assert _extract(first, "user-data", tmp_path / "user-data") == data
    assert _extract(first, "config", tmp_path / "config") == data  # what older metadata images read
    label = subprocess.run(["xorriso", "-indev", str(first), "-pvd_info"], capture_output=True, text=True)
    assert "Volume Id    : cidata" in label.stdout
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["data.iso"]  # no scratch left behind
    assert "scsi-cd,drive=cidata,bus=cidata-scsi.0" in cdrom_args(first)


def test_data_comes_from_one_option(tmp_path: Path) -> None:
    assert read_data(None, None) is None
    assert read_data("words", None) == b"words"
    given = tmp_path / "meta.json"
    given.write_bytes(b"{}")
    assert read_data(None, given) == b"{}"
    with pytest.raises(BadInput, match="--data-file .*missing"):
        read_data(None, tmp_path / "missing")
    with pytest.raises(BadInput, match="not both"):
        read_data("x", given)


def _write_tree(data: str, base: Path) -> subprocess.CompletedProcess[str]:
    base.mkdir(exist_ok=True)
    command = ["busybox", "awk", "-v", f"base={base}", "-f", str(TREE)]
    return subprocess.run(command, input=data, capture_output=True, text=True)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@needs_busybox
def test_linuxkit_json_becomes_files_and_folders_with_their_modes(tmp_path: Path) -> None:
    document = {
        "ssh": {"perm": "0700", "entries": {"authorized_keys": {"perm": "0600", "content": "ssh-ed25519 AAAA k\n"}}},
        "hostname": {"content": "vm-one"},
        "foo": {
            "entries": {
                "bar": {"content": 'line 1\nsaid "hi" \\ é 😀 it\'s', "unknown": [1, {"x": None}]},
                "empty": {"perm": "0600", "content": ""},
                "deep": {"entries": {"x": {"content": "1"}}},
            }
        },
    }
    done = _write_tree(json.dumps(document), tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ssh" / "authorized_keys").read_text() == "ssh-ed25519 AAAA k\n"
    assert _mode(tmp_path / "ssh") == 0o700 and _mode(tmp_path / "ssh" / "authorized_keys") == 0o600
    assert (tmp_path / "foo" / "bar").read_text() == 'line 1\nsaid "hi" \\ é 😀 it\'s'
    assert _mode(tmp_path / "foo") == 0o755 and _mode(tmp_path / "foo" / "bar") == 0o644  # LinuxKit's defaults
    assert (tmp_path / "foo" / "empty").read_bytes() == b"" and _mode(tmp_path / "foo" / "empty") == 0o600
    assert (tmp_path / "foo" / "deep" / "x").read_text() == "1"
    assert (tmp_path / "hostname").read_text() == "vm-one"


@needs_busybox
def test_bad_entries_are_skipped_and_nothing_escapes_the_base(tmp_path: Path) -> None:
    base = tmp_path / "config"
    document = {
        "both": {"content": "x", "entries": {}},
        "neither": {"perm": "0644"},
        "..": {"content": "escaped"},
        "badperm": {"content": "x", "perm": "rw"},
        "dir": {"entries": {"../../escaped": {"content": "x"}, "ok": {"content": "fine"}}},
    }
    done = _write_tree(json.dumps(document), base)
    assert done.returncode == 0
    assert "both is invalid" in done.stderr and "neither is invalid" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config"]
    assert sorted(str(p.relative_to(base)) for p in base.rglob("*")) == ["dir", "dir/ok"]


@needs_busybox
@pytest.mark.parametrize(
    "data",
    ["plain words", '"a JSON string"', "[1, 2]", '{"a": {"content": 5}}', '{"a": {"content": "x"}} trailing', "{"],
)
def test_data_that_is_not_linuxkit_json_writes_nothing(tmp_path: Path, data: str) -> None:
    done = _write_tree(data, tmp_path)
    assert done.returncode == 3, done.stderr
    assert list(tmp_path.iterdir()) == []


LABEL = COMPONENTS / "metadata" / "volume-label"
needs_mkfs_fat = pytest.mark.skipif(shutil.which("mkfs.fat") is None, reason="needs dosfstools (scripts/setup.sh)")


def _label(device: Path) -> str:
    """What the metadata container's label reader prints for a device, run by the host's busybox."""
    done = subprocess.run(["busybox", "sh", str(LABEL), str(device)], capture_output=True, text=True, check=True)
    return done.stdout


def _iso(tmp_path: Path, volume_id: str, *options: str) -> Path:
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "user-data").write_text("{}")
    iso = tmp_path / f"{volume_id.replace(' ', '_')}.iso"
    command = ["xorriso", "-as", "mkisofs", "-quiet", "-V", volume_id, *options, "-o", str(iso), str(tree)]
    subprocess.run(command, check=True, capture_output=True)
    return iso


@needs_xorriso
@needs_busybox
@pytest.mark.parametrize(("volume_id", "options"), [("cidata", ()), ("CIDATA", ("-J", "-r")), ("my config", ())])
def test_iso9660_labels_are_read_without_blkid(tmp_path: Path, volume_id: str, options: tuple[str, ...]) -> None:
    assert _label(_iso(tmp_path, volume_id, *options)) == f"{volume_id}\n"


@needs_xorriso
@needs_busybox
def test_the_config_iso_distrokit_attaches_reads_as_cidata(tmp_path: Path) -> None:
    assert _label(write_config_iso(b"{}", tmp_path / "data.iso")) == "cidata\n"


@needs_mkfs_fat
@needs_busybox
@pytest.mark.parametrize(("fat", "size"), [("12", "8M"), ("16", "24M"), ("32", "40M")])
def test_fat_labels_are_read_from_the_boot_sector(tmp_path: Path, fat: str, size: str) -> None:
    image = tmp_path / "fat.img"
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.fat", "-F", fat, "-n", "CIDATA", str(image)], check=True, capture_output=True)
    assert _label(image) == "CIDATA\n"


@needs_mkfs_fat
@needs_busybox
def test_no_label_prints_nothing(tmp_path: Path) -> None:
    unlabelled = tmp_path / "fat.img"
    subprocess.run(["truncate", "-s", "8M", str(unlabelled)], check=True)
    subprocess.run(["mkfs.fat", str(unlabelled)], check=True, capture_output=True)  # "NO NAME" in the boot sector
    blank, short = tmp_path / "blank.img", tmp_path / "short.img"
    blank.write_bytes(bytes(1 << 20))
    short.write_bytes(b"CD001")
    assert [_label(path) for path in (unlabelled, blank, short)] == ["", "", ""]
