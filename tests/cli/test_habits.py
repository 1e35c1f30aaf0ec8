"""buildlib.cli.habits: LinuxKit's CLI habits (global options after the subcommand, -o, --no-sbom, stdin, --help)."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import COMPONENTS, REPO, SPECS, Built

from buildlib.cli import main, parser
from buildlib.cli.habits import apply_verbosity, check_build_args, command_path, subcommands


def test_global_options_before_or_after_the_subcommand() -> None:
    assert parser().parse_args(["cache", "ls", "--cache", "/x"]).cache == "/x"
    assert parser().parse_args(["--cache", "/y", "cache", "ls"]).cache == "/y"
    after = parser().parse_args(["build", "a.yml", "--cache", "/z", "--debug"])
    assert (after.cache, after.debug) == ("/z", True)
    assert parser().parse_args(["--debug", "build", "a.yml"]).debug is True


# Every LinuxKit `build` flag the docs list (docs/linuxkit.md), typed as a LinuxKit user types it, and what it sets.
LINUXKIT_BUILD_FLAGS = [
    (["build", "a.yml", "--cache", "/c"], {"cache": "/c"}),
    (["build", "a.yml", "--debug"], {"debug": True}),
    (["build", "-o", "root.tar", "a.yml"], {"output_file": "root.tar"}),
    (["build", "--o", "root.tar", "a.yml"], {"output_file": "root.tar"}),
    (["build", "-o", "-", "a.yml"], {"output_file": "-"}),
    (["build", "--no-sbom", "a.yml"], {"no_sbom": True}),
    (["build", "--sbom-output", "sbom.json", "a.yml"], {"sbom_output": "sbom.json"}),
    (["build", "--decompress-kernel", "a.yml"], {"decompress_kernel": True}),
    (["build", "--docker", "a.yml"], {"docker": True}),
    (["build", "-"], {"spec": ["-"]}),
]


@pytest.mark.parametrize(("argv", "expected"), LINUXKIT_BUILD_FLAGS, ids=[" ".join(a) for a, _ in LINUXKIT_BUILD_FLAGS])
def test_linuxkit_build_flags_parse_as_typed(argv: list[str], expected: dict[str, object]) -> None:
    args = parser(argv).parse_args(argv)
    assert {key: getattr(args, key) for key in expected} == expected


def test_linuxkit_build_flags_without_them_set_nothing() -> None:
    args = parser(["build", "a.yml"]).parse_args(["build", "a.yml"])
    assert (args.cache, args.debug, args.output_file, args.no_sbom, args.sbom_output) == (
        None,
        False,
        None,
        False,
        None,
    )
    assert (args.decompress_kernel, args.docker, args.name) == (False, False, None)
    assert check_build_args(args) == [] and args.format is None


def test_linuxkit_build_flags_together_as_checked_before_a_build() -> None:
    argv = ["build", "--o", "-", "--no-sbom", "--sbom-output", "s.json", "--decompress-kernel", "--docker", "-"]
    args = parser(argv).parse_args([*argv, "--cache", "/c", "--debug"])
    notes = check_build_args(args)
    assert notes == ["--docker: distrokit needs no Docker daemon; the option is ignored"]
    assert args.name == "moby", "a spec from stdin is named moby, as in LinuxKit"
    assert args.format == ["tar"], "-o writes tar unless a format is given"
    assert (args.output_file, args.cache, args.debug) == ("-", "/c", True)
    named = parser(["build"]).parse_args(["build", "--name", "web", "-"])
    check_build_args(named)
    assert named.name == "web", "--name wins over moby"


def test_a_spec_from_stdin_finds_its_pkg_folders_from_the_current_folder(tmp_path: Path) -> None:
    def dry_run(cwd: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "buildlib.cli", "--cache", str(tmp_path / "c"), "build", "--dry-run", "-"]
        text = 'init:\n  - "@pkg:components/init"\n'
        return subprocess.run(argv, input=text, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)

    found = dry_run(REPO)
    assert found.returncode == 0, found.stderr
    assert "docker.io/distrokit/init:" in found.stdout
    missing = dry_run(tmp_path)
    assert missing.returncode == 2 and "package folder components/init does not exist" in missing.stderr


def test_every_command_help_shows_an_example() -> None:
    for path, sub in subcommands(parser()):
        assert "distrokit " in (sub.epilog or "") and "example" in (sub.epilog or ""), path


def test_o_tar_without_sbom_and_the_sbom_beside(minimal_build: Built, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out, sbom = tmp_path / "root.tar", tmp_path / "sbom.json"
    # builds in the shared store take names of their own: the minimal build's state stays as it was
    args = ["build", str(SPECS / "minimal.yml"), "--cache", str(minimal_build.cache), "-o", str(out), "--name", "ho"]
    code = main([*args, "--no-sbom", "--sbom-output", str(sbom), "--docker", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "no Docker daemon" in err
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert "boot/kernel" in names and "etc/distrokit/installed" in names
    assert "etc/distrokit/sbom.spdx.json" not in names
    assert json.loads(sbom.read_bytes())["spdxVersion"] == "SPDX-2.3"

    main(
        [
            "--cache",
            str(minimal_build.cache),
            "build",
            str(SPECS / "minimal.yml"),
            "--o",
            str(out),
            "-q",
            "--name",
            "ho",
        ]
    )
    with tarfile.open(out) as tar:
        assert "etc/distrokit/sbom.spdx.json" in tar.getnames(), "without --no-sbom the SBOM is in the image"


def test_spec_from_stdin_to_stdout(minimal_build: Built, tmp_path: Path) -> None:
    text = (SPECS / "minimal.yml").read_text().replace("@pkg:../components", f"@pkg:{COMPONENTS}")
    done = subprocess.run(
        [sys.executable, "-m", "buildlib.cli", "build", "--cache", str(minimal_build.cache), "-o", "-", "-q", "-"],
        input=text.encode(),
        capture_output=True,
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        assert "boot/kernel" in tar.getnames()
    assert (minimal_build.cache / "outputs" / "moby").is_dir(), "a spec from stdin is named moby, as in LinuxKit"


def test_output_to_a_pipe_closed_early_ends_quietly(minimal_build: Built, tmp_path: Path) -> None:
    """`build -o - | head -c 512`: a real pipe whose reader stops after 512 bytes of a tar of megabytes."""
    command = [sys.executable, "-m", "buildlib.cli", "build", "--cache", str(minimal_build.cache), "-o", "-", "-q"]
    writer = subprocess.Popen(
        [*command, str(SPECS / "minimal.yml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path
    )
    assert writer.stdout is not None and writer.stderr is not None
    reader = subprocess.run(["head", "-c", "512"], stdin=writer.stdout, capture_output=True, timeout=600, check=True)
    writer.stdout.close()  # only head holds the pipe's read end now: it closes it on exit
    errors = writer.stderr.read().decode()
    assert writer.wait(timeout=600) == 128 + 13, errors  # as a command that SIGPIPE ended
    assert len(reader.stdout) == 512
    assert "Traceback" not in errors and "BrokenPipe" not in errors and errors == ""


def test_decompress_kernel_writes_an_elf(minimal_build: Built, tmp_path: Path) -> None:
    code = main(
        [
            "build",
            str(SPECS / "minimal.yml"),
            "--cache",
            str(minimal_build.cache),
            "--dir",
            str(tmp_path),
            "-q",
            "--decompress-kernel",
            "--name",
            "vmlinux",
        ]
    )
    assert code == 0
    assert (tmp_path / "vmlinux-kernel").read_bytes()[:4] == b"\x7fELF"


def test_o_needs_one_single_file_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build", str(REPO / "specs" / "minimal.yml"), "-f", "kernel+initrd", "-o", str(tmp_path / "x")])
    assert code == 2 and "-o writes one file" in capsys.readouterr().err


def _long_flags(argv: list[str]) -> list[tuple[str, argparse.Action]]:
    """Every long option of the command `argv` names (--help aside), with its action."""
    *_, command = command_path(parser(argv), argv)
    return [
        (option, action)
        for action in command._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    ]


def _typed(option: str, action: argparse.Action) -> list[str]:
    """The option as a LinuxKit user types it, with a value when it takes one."""
    if action.nargs == 0:
        return [option]
    if action.choices:
        return [option, str(next(iter(action.choices)))]
    return [option, "2" if action.type in (int, float) or option == "--mem" else "x"]


GO_STYLE_COMMANDS = [["build", "a.yml"], ["run", "out/x"], ["pkg", "build", "components/init"]]


@pytest.mark.parametrize(
    "command", GO_STYLE_COMMANDS, ids=[c[0] if c[0] != "pkg" else "pkg build" for c in GO_STYLE_COMMANDS]
)
def test_every_long_flag_with_one_dash_as_go_takes_it(command: list[str]) -> None:
    """`-format iso-efi` is `--format iso-efi` (argparse alone reads `-f ormat`), for every long flag."""
    *words, positional = command
    flags = _long_flags(command)
    assert len(flags) > 5
    for option, action in flags:
        double = [*words, *_typed(option, action), positional]
        typed = _typed(option, action)
        single = [*words, typed[0][1:], *typed[1:], positional]
        expected = vars(parser(double).parse_args(double))
        assert vars(parser(single).parse_args(single)) == expected, single
        if action.nargs != 0:  # Go's -flag=value too
            joined = [*words, "=".join(single[len(words) : -1]), positional]
            assert vars(parser(joined).parse_args(joined)) == expected, joined


def test_linuxkit_command_lines_as_typed() -> None:
    argv = ["build", "-format", "iso-efi", "-dir", "out", "-name", "x", "-size", "256M", "a.yml"]
    args = parser(argv).parse_args(argv)
    assert (args.format, args.dir, args.name, args.size) == (["iso-efi"], "out", "x", "256M")
    argv = ["run", "qemu", "-cpus", "2", "-mem", "2048", "out/x"]
    args = parser(argv).parse_args(argv)
    assert (args.path, args.cpus, args.mem) == ("out/x", 2, "2048M"), "-mem 2048 is MiB, as in LinuxKit"
    argv = ["--cache", "/c", "run", "qemu", "-mem=4G", "out/y"]
    args = parser(argv).parse_args(argv)
    assert (args.path, args.mem, args.cache) == ("out/y", "4G", "/c")
    alone = parser(["run", "qemu"]).parse_args(["run", "qemu"])
    assert alone.path == "qemu", "`run qemu` alone boots an output named qemu"
    short = parser(["build"]).parse_args(["build", "-f", "tar", "-o", "-", "-j2", "-q", "-"])
    assert (short.format, short.output_file, short.jobs, short.quiet) == (["tar"], "-", 2, True)
    gc = parser(["cache"]).parse_args(["cache", "gc", "-v", "-keep", "2G"])
    assert (gc.verbose, gc.keep) == (True, "2G"), "cache gc -v is still its own"


def test_mirror_before_the_subcommand_as_cache_is() -> None:
    before = parser(["build"]).parse_args(["--mirror", "http://m.example", "build", "a.yml"])
    assert before.mirror == ["http://m.example"]
    after = parser(["build"]).parse_args(["--mirror", "http://a", "build", "a.yml", "--mirror", "http://b"])
    assert after.mirror == ["http://b"], "the one after the subcommand wins"
    assert parser(["build"]).parse_args(["build", "a.yml"]).mirror is None
    assert parser(["pull"]).parse_args(["-mirror", "docker.io=http://m", "pull", "redis"]).mirror == [
        "docker.io=http://m"
    ]


@pytest.mark.parametrize(
    ("argv", "quiet", "debug"),
    [
        (["build", "-v", "0", "a.yml"], True, False),
        (["-v", "1", "build", "a.yml"], False, False),
        (["build", "a.yml", "--verbose", "2"], False, True),
        (["-verbose=3", "build", "a.yml"], False, True),
        (["build", "a.yml"], False, False),
    ],
)
def test_v_n_is_linuxkits_verbosity(argv: list[str], quiet: bool, debug: bool) -> None:
    args = parser(argv).parse_args(argv)
    apply_verbosity(args)
    assert (args.quiet, args.debug) == (quiet, debug)


def test_pkg_build_prints_the_image_on_stdout(minimal_build: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["pkg", "build", "-cache", str(minimal_build.cache), str(COMPONENTS / "init")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert re.fullmatch(r"distrokit/init:[0-9a-z]+\n", out), out
    assert out.strip() in err, "the progress line on stderr names the same image"
