"""buildlib.tasks.audit: an up-to-date task whose bytes a recomputation does not give fails the build,
named with the inputs its key missed; a sound store passes the audit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cachetruth import BuildRun, Truth, base_spec, build_outputs, copy_store, write_world
from conftest import COMPONENTS
from registry import Registry

from buildlib.errors import AuditError
from buildlib.fsutil import xxh_file
from buildlib.outputs.initrd import seal_path
from buildlib.tasks import families
from buildlib.tasks.audit import audit_enabled

pytestmark = pytest.mark.registry


def reseal(segment: Path, data: bytes) -> None:
    """Other bytes under the segment's key, sealed as sound: what a key blind to an input leaves
    (a damaged segment is the store check's to find, by its seal)."""
    segment.write_bytes(data)
    seal_path(segment).write_text(xxh_file(segment))


def test_the_environment_switches_it_on() -> None:
    assert audit_enabled({"DISTROKIT_AUDIT": "1"})
    assert not audit_enabled({"DISTROKIT_AUDIT": "0"})
    assert not audit_enabled({})


def test_a_sound_store_passes_the_audit(truth_images: Path, registry: Registry, tmp_path: Path) -> None:
    truth = Truth(registry.host, truth_images, tmp_path, COMPONENTS)
    truth.check(base_spec(), [])
    truth.check(base_spec(), ["nothing"])  # every task up to date, every one audited


def test_a_key_blind_to_image_order_is_caught_and_named(
    truth_images: Path,
    registry: Registry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bug issue 15 was filed for, put back: the files part's key without the images' order."""
    real = families.part_inputs

    def blind(*args: object) -> dict[str, object]:
        inputs = real(*args)  # type: ignore[arg-type]
        inputs.pop("images")
        return inputs

    monkeypatch.setattr(families, "part_inputs", blind)
    store = copy_store(truth_images, tmp_path / "store")
    base = base_spec()
    spec = write_world(base, registry.host, tmp_path / "project")
    assert build_outputs(spec, BuildRun(store, tmp_path / "out", audit=True), base, COMPONENTS).error is None
    swapped = replace(base, onboot=base.onboot[::-1])
    spec = write_world(swapped, registry.host, tmp_path / "project")
    outcome = build_outputs(spec, BuildRun(store, tmp_path / "out", audit=True), swapped, COMPONENTS)
    assert outcome.error is not None and outcome.error.startswith(AuditError.__name__)
    assert "part:truth/files was up to date" in outcome.error
    assert "spec onboot" in outcome.error
    assert "segment" in outcome.error


def test_a_segment_changed_behind_the_key_is_caught(truth_images: Path, registry: Registry, tmp_path: Path) -> None:
    store = copy_store(truth_images, tmp_path / "store")
    base = base_spec()
    spec = write_world(base, registry.host, tmp_path / "project")
    assert build_outputs(spec, BuildRun(store, tmp_path / "out", audit=False), base, COMPONENTS).error is None
    (pointer,) = (store / "build").glob("*/files.segment")
    segment = store / "segments" / f"{pointer.read_text().strip()}.cpio.z"
    reseal(segment, segment.read_bytes() + b"\0")
    outcome = build_outputs(spec, BuildRun(store, tmp_path / "out", audit=True), base, COMPONENTS)
    assert outcome.error is not None and "no probed input changed" in outcome.error


def test_build_audit_flag_fails_with_exit_1_naming_the_task(
    truth_images: Path, registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from buildlib import cli

    store = copy_store(truth_images, tmp_path / "store")
    spec = write_world(base_spec(), registry.host, tmp_path / "project")
    argv = ["--cache", str(store), "build", str(spec), "--dir", str(tmp_path / "out"), "-q"]
    assert cli.main(argv) == 0
    assert cli.main([*argv, "--audit"]) == 0
    (pointer,) = (store / "build").glob("*/init.segment")
    segment = store / "segments" / f"{pointer.read_text().strip()}.cpio.z"
    reseal(segment, segment.read_bytes()[:-1])
    capsys.readouterr()
    assert cli.main([*argv, "--audit"]) == 1
    assert "part:spec/init was up to date" in capsys.readouterr().err
