"""Hostile specs: alias bombs, huge or endless files, bytes that are not UTF-8, deep nesting, `files`
paths that climb out, and sources that are devices, FIFOs, folders or symlink loops: each one line
naming the file (and line), exit 2, nothing built."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from buildlib import cli
from buildlib.errors import SpecError
from buildlib.spec.model import MAX_SPEC_BYTES, parse_spec_text


def validate(capsys: pytest.CaptureFixture[str], *paths: str) -> tuple[int, str]:
    code = cli.main(["validate", *paths])
    return code, capsys.readouterr().err


def bomb(depth: int = 9, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, depth):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines)


@pytest.mark.parametrize(
    "text",
    [
        bomb() + "\n",  # a billion laughs at the top level
        "init: &a [lol, lol, lol, lol, lol, lol, lol, lol]\n"
        "onboot:\n  - {name: x, image: a, command: *a, binds: [*a, *a, *a, *a], capabilities: [*a, *a]}\n",
        bomb().replace("\n", "\n  ").replace("l0:", "x:\n  l0:", 1)
        + "\nonboot:\n  - {name: x, image: a, command: *l8}\n",
    ],
)
def test_alias_bombs_end_at_once(tmp_path: Path, capsys, text: str) -> None:
    spec = tmp_path / "bomb.yml"
    spec.write_text(text)
    started = time.monotonic()
    code, err = validate(capsys, str(spec))
    assert time.monotonic() - started < 10
    assert code == 2 and f"{spec}:" in err and "Traceback" not in err


def test_a_huge_spec_is_refused_without_reading_it_all(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "huge.yml"
    with open(spec, "wb") as handle:
        handle.write(b"init: [x]\n# ")
        handle.truncate(MAX_SPEC_BYTES + 10)
    code, err = validate(capsys, str(spec))
    assert code == 2 and f"{spec}: more than 16 MiB" in err


def test_an_endless_device_as_a_spec(capsys) -> None:
    code, err = validate(capsys, "/dev/zero")
    assert code == 2 and "/dev/zero: more than 16 MiB" in err


def test_a_spec_from_a_pipe_still_reads(tmp_path: Path, capsys) -> None:
    fifo = tmp_path / "spec.fifo"
    os.mkfifo(fifo)
    text = "kernel:\n  image: example.org/kernel:1\ninit: [example.org/init:1]\n"
    writer = threading.Thread(target=lambda: fifo.write_text(text))
    writer.start()
    code, err = validate(capsys, str(fifo))
    writer.join()
    assert code == 0, err


@pytest.mark.parametrize(
    "data, message",
    [
        (b'init:\n  - "\xff\xfe"\n', "not UTF-8 text"),
        (b"\x00\x01\x02binary", "special characters are not allowed"),
        (b"init: " + b"[" * 20000 + b"]" * 20000 + b"\n", "nested too deeply"),
    ],
)
def test_bytes_that_are_no_yaml_text(tmp_path: Path, capsys, data: bytes, message: str) -> None:
    spec = tmp_path / "junk.yml"
    spec.write_bytes(data)
    code, err = validate(capsys, str(spec))
    assert code == 2 and f"{spec}" in err and message in err and "Traceback" not in err


@pytest.mark.parametrize("path", ["../etc/passwd", "etc/../../x", "/../x", "..", "a/.."])
def test_files_paths_that_climb_out(tmp_path: Path, capsys, path: str) -> None:
    spec = tmp_path / "files.yml"
    spec.write_text(f"files:\n  - path: {path!r}\n    contents: x\n")
    code, err = validate(capsys, str(spec))
    assert code == 2 and f"{spec}:2:" in err and "inside the image" in err


def _source_kinds(tmp_path: Path) -> dict[str, tuple[str, str]]:
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    return {
        "folder": (str(folder), "is a folder"),
        "fifo": (str(fifo), "is a FIFO"),
        "device": ("/dev/zero", "is a device"),
        "loop": (str(loop), "is a symlink loop"),
        "missing": (str(tmp_path / "nothing"), "does not exist"),
    }


@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "loop", "missing"])
def test_files_sources_that_are_no_files(tmp_path: Path, capsys, kind: str) -> None:
    source, message = _source_kinds(tmp_path)[kind]
    spec = tmp_path / "src.yml"
    spec.write_text(f"files:\n  - path: etc/x\n    source: {source}\n")
    out = tmp_path / "out"
    started = time.monotonic()
    code = cli.main(["--cache", str(tmp_path / "c"), "build", "-q", "-f", "tar", str(spec), "--dir", str(out)])
    err = capsys.readouterr().err
    assert time.monotonic() - started < 60  # a FIFO or a device is never read
    assert code == 2 and f"{spec}:2:" in err and message in err and "Traceback" not in err
    assert not out.exists() or not list(out.iterdir())


def test_a_text_libyaml_cannot_encode_gets_pyyamls_message() -> None:
    """Found by benchmarks/fuzz.py: a lone surrogate (a spec read with surrogateescape) made libyaml
    raise UnicodeEncodeError; it is a spec error like any other character YAML does not allow."""
    with pytest.raises(SpecError):
        parse_spec_text("\udcffkernel:\n  image: a/b:1\n", "s.yml")
