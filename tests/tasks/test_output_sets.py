"""An output set is replaced all at once or not at all, and every output file is checked against what
its task wrote: a failed or killed build leaves --dir byte for byte as it was; an edited, truncated or
replaced output (the kernel and the cmdline too, not only the initrd) is written again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Built, build, dodo_project, doit
from layerkit import M, store_layer

from buildlib import cli
from buildlib.errors import DistrokitError
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store

TWO_FORMATS = ("kernel+initrd", "iso-bios")


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder`, hidden ones included: a file's bytes, None for a folder."""
    return {
        str(path.relative_to(folder)): (path.read_bytes() if path.is_file() else None)
        for path in sorted(folder.rglob("*"))
    }


def staged_leftovers(built_state: Path) -> list[Path]:
    return [path for path in (built_state / "staged").rglob("*") if path.is_file()]


def edit_spec(spec: Path) -> None:
    """A change to the cmdline (the boot files) and to the files part (the initrd, the ISO): every output."""
    text = spec.read_text()
    edited = text.replace("console=ttyS0 quiet", "console=ttyS0").replace('echo "== uname -a"', 'echo "== kernel"')
    assert edited != text
    spec.write_text(edited)


def failing_xorriso(folder: Path) -> str:
    """A PATH whose xorriso fails as a broken tool would, so the ISO task fails after the kernel+initrd
    and boot tasks wrote their files."""
    folder.mkdir()
    fake = folder / "xorriso"
    fake.write_text("#!/bin/sh\necho 'xorriso : FAILURE : simulated for this test' >&2\nexit 5\n")
    fake.chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def test_failed_build_leaves_every_format_as_it_was(
    minimal_build: Built, spec_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    first = build(spec_copy, minimal_build.cache, out, name="whole", formats=TWO_FORMATS)
    before = snapshot(out)
    assert {"whole-kernel", "whole-cmdline", "whole-initrd.img", "whole.iso"} <= set(before)
    edit_spec(spec_copy)

    monkeypatch.setenv("PATH", failing_xorriso(tmp_path / "bin"))
    with pytest.raises(DistrokitError, match="xorriso"):
        build(spec_copy, minimal_build.cache, out, name="whole", formats=TWO_FORMATS)
    assert snapshot(out) == before  # not a new kernel+initrd beside the old ISO
    assert staged_leftovers(first.state_dir) == []

    monkeypatch.undo()
    again = build(spec_copy, minimal_build.cache, out, name="whole", formats=TWO_FORMATS)
    assert {"output:whole/boot", "output:whole/kernel+initrd", "output:whole/iso-bios"} <= set(again.report.executed)
    assert (out / "whole-cmdline").read_text() == "console=ttyS0"
    assert (out / "whole-initrd.img").read_bytes() != before["whole-initrd.img"]
    assert sorted(snapshot(out)) == sorted(before)  # the same names, no hidden leftovers


def hostile_image(cache: Path) -> str:
    """An image whose layer climbs out of the root: refused when the build indexes it."""
    store = Store(cache)
    layer = store_layer(store, [M("bin/ok", data=b"1"), M("../escape", data=b"evil")])
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]}}
    name = "localhost/outputs-hostile:1"
    store.write_image(ImageRef.parse(name), config, [(layer.digest, layer.size, layer.media_type)])
    return name


def test_refused_layer_leaves_the_output_folder_as_it_was(
    minimal_build: Built, spec_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    cache = minimal_build.cache
    argv = ["--cache", str(cache), "build", "--name", "refused", "--dir", str(out), str(spec_copy)]
    assert cli.main(argv) == 0  # the CLI's defaults: -j 2, the build stamp
    before = snapshot(out)
    edit_spec(spec_copy)
    image = hostile_image(cache)
    spec_copy.write_text(spec_copy.read_text() + f"services:\n  - name: hostile\n    image: {image}\n")
    capsys.readouterr()

    assert cli.main(argv) != 0
    assert "escape" in capsys.readouterr().err
    assert snapshot(out) == before


def test_killed_build_leaves_the_output_folder_as_it_was(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build(spec_copy, minimal_build.cache, out, name="killed", formats=TWO_FORMATS)
    before = snapshot(out)
    edit_spec(spec_copy)
    argv = ["--cache", str(minimal_build.cache), "build", "-f", ",".join(TWO_FORMATS), "--name", "killed"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "buildlib.cli", *argv, "--dir", str(out), str(spec_copy)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # midway: the first new output file is written (staged, or in --dir itself where a build has no staging)
    deadline = time.monotonic() + 120
    while not staged_leftovers(first.state_dir) and (out / "killed-cmdline").read_bytes() == before["killed-cmdline"]:
        assert process.poll() is None, "the build ended before it could be killed midway"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert snapshot(out) == before

    rebuilt = build(spec_copy, minimal_build.cache, out, name="killed", formats=TWO_FORMATS)
    assert "output:killed/boot" in rebuilt.report.executed
    assert (out / "killed-cmdline").read_text() == "console=ttyS0"
    assert staged_leftovers(first.state_dir) == []


EDITS = {
    "cmdline": lambda path: path.write_text("console=ttyS0 init=/bin/sh"),
    "kernel appended": lambda path: path.write_bytes(path.read_bytes() + b"\0extra"),
    "kernel truncated": lambda path: os.truncate(path, path.stat().st_size // 2),
    "initrd replaced": lambda path: path.write_bytes(b"not an initrd"),
}
EDITED_FILE = {"cmdline": "-cmdline", "kernel appended": "-kernel", "kernel truncated": "-kernel"}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_output_is_written_again_by_the_cli(
    minimal_build: Built, spec_copy: Path, tmp_path: Path, edit: str
) -> None:
    out = tmp_path / "out"
    argv = ["--cache", str(minimal_build.cache), "build", "--name", "edited", "--dir", str(out), str(spec_copy)]
    assert cli.main(argv) == 0
    before = snapshot(out)
    target = out / f"edited{EDITED_FILE.get(edit, '-initrd.img')}"
    EDITS[edit](target)
    assert target.read_bytes() != before[target.name]

    assert cli.main(argv) == 0  # default options: the build stamp's fast path must not keep the edit
    assert snapshot(out) == before


def test_edit_that_keeps_size_and_mtime_is_found_by_the_task(
    minimal_build: Built, spec_copy: Path, tmp_path: Path
) -> None:
    """The stamp and the record compare size, mtime and inode; an edit in place that keeps all three
    still changes ctime, and a build that runs (here: the task check itself) compares the bytes."""
    out = tmp_path / "out"
    build(spec_copy, minimal_build.cache, out, name="sneaky")
    cmdline = out / "sneaky-cmdline"
    text, st = cmdline.read_bytes(), cmdline.stat()
    with open(cmdline, "r+b") as handle:  # same inode, same size
        handle.write(b"X" * len(text))
    os.utime(cmdline, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the old mtime
    touched = build(spec_copy, minimal_build.cache, out, name="sneaky")
    assert touched.report.executed == ()  # a stat that matches is trusted: the cheap check
    os.utime(cmdline, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    rebuilt = build(spec_copy, minimal_build.cache, out, name="sneaky")
    assert rebuilt.report.executed == ("output:sneaky/boot",)
    assert cmdline.read_bytes() == text


def test_touched_output_with_the_same_bytes_is_not_written_again(
    minimal_build: Built, spec_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    build(spec_copy, minimal_build.cache, out, name="touched")
    initrd = out / "touched-initrd.img"
    inode = initrd.stat().st_ino
    os.utime(initrd, ns=(1, 1))
    again = build(spec_copy, minimal_build.cache, out, name="touched")
    assert again.report.executed == ()  # the stat differs, the bytes do not
    assert initrd.stat().st_ino == inode


def test_edited_outputs_are_written_again_through_doit(minimal_build: Built, tmp_path: Path) -> None:
    root = dodo_project(tmp_path)
    cache = minimal_build.cache
    doit(root, cache)
    out = root / "out"
    before = snapshot(out)
    (out / "doitspec-cmdline").write_text("console=ttyS0 init=/bin/sh")
    with open(out / "doitspec-kernel", "ab") as handle:
        handle.write(b"appended")
    doit(root, cache)
    assert snapshot(out) == before
