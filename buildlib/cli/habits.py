"""LinuxKit's command-line habits: global options after the subcommand, `-o FILE`, `--docker`, examples in --help.

`linuxkit build --cache DIR` is how LinuxKit users type it, so `--cache`, `--debug` and `-v N` are
accepted before or after any subcommand (and `--mirror` before it too). `build -o FILE` (also `--o`, as
Go's flag package spells it) writes the one file of a single-file format (tar by default) to FILE, or
to stdout for `-`. Go's flag package also takes a long option with one dash (`-format iso-efi`,
`-mem=2048`), which argparse would read as `-f ormat`: `LinuxKitParser` rewrites such a word to the
long option it names before parsing, and drops the `qemu` of `linuxkit run qemu PATH`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import BadInput

STDIN_NAME = "moby"  # LinuxKit's name for a build whose spec comes from stdin
STDIN_SPEC = "-"

EXAMPLES: dict[tuple[str, ...], str] = {
    ("build",): """examples:
  distrokit build specs/minimal.yml --dir out          # out/minimal-kernel, -initrd.img, -cmdline
  distrokit build --cache /var/cache/dk -f tar -o root.tar specs/sshd.yml
  cat my.yml | distrokit build --name my -             # the spec from stdin
  distrokit build --cache-from reg.example/ci/cache --cache-to reg.example/ci/cache my.yml
  distrokit build --json -q my.yml | jq .outputs""",
    ("explain",): "example:\n  distrokit explain specs/minimal.yml --dir out --json",
    ("validate",): "example:\n  distrokit validate base.yml extra.yml",
    ("sbom",): "example:\n  distrokit sbom specs/sshd.yml > sshd.spdx.json",
    (
        "run",
    ): "examples:\n  distrokit run out/minimal\n  distrokit run out/sshd --publish 2222:22 --disk data.img,size=256M",
    ("ps",): "example:\n  distrokit ps",
    ("console",): "example:\n  distrokit run out/sshd --detached --state vm1 && distrokit console vm1",
    ("pull",): "examples:\n  distrokit pull redis:7 --arch arm64\n  distrokit pull oci-archive:app.tar --name app:1",
    ("push",): "example:\n  distrokit push redis:7 127.0.0.1:5000/redis:7",
    ("pkg",): "example:\n  distrokit pkg build components/init",
    ("pkg", "build"): "example:\n  distrokit pkg build components/init components/getty",
    ("pkg", "push"): "example:\n  distrokit pkg push components/init --to 127.0.0.1:5000",
    ("pkg", "show-tag"): "example:\n  distrokit pkg show-tag pkg/hello",
    ("lock",): "examples:\n  distrokit lock specs/minimal.yml\n  distrokit lock --update specs/minimal.yml",
    ("verify",): "example:\n  distrokit verify specs/minimal.yml --dir out",
    ("cache",): "examples:\n  distrokit cache ls\n  distrokit cache gc --keep 2G",
    ("cache", "ls"): "example:\n  distrokit cache ls --json",
    ("cache", "du"): "example:\n  distrokit cache du --cache /var/cache/dk",
    ("cache", "gc"): "example:\n  distrokit cache gc --keep 2G -v",
    ("cache", "rm"): "example:\n  distrokit cache rm redis:7",
    ("cache", "export"): "example:\n  distrokit cache export redis:7 redis.tar",
    ("cache", "import"): "example:\n  distrokit cache import redis.tar redis:7",
}
DEFAULT_EXAMPLE = "example:\n  distrokit {command} --help"


def subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every subcommand parser below `parser`, with its path of names."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(((*path, name), sub))
                found.extend(subcommands(sub, (*path, name)))
    return found


TOP_VALUED_OPTIONS = (
    "--cache",
    "--components",
    "--mirror",
    "-v",
    "--verbose",
)  # the top-level options that take a value
RUN_HYPERVISOR = "qemu"  # `linuxkit run qemu PATH`: distrokit has one hypervisor, so the word is optional
VERBOSITY_HELP = "LinuxKit's verbosity: 0 is -q, 1 the default, 2 or more --debug"


class LinuxKitParser(argparse.ArgumentParser):
    """The top-level parser: a command line typed as for LinuxKit is rewritten before it is parsed."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def,override]
        words = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(linuxkit_words(self, words), namespace)


def linuxkit_words(top: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """`words` with Go-style long options (`-format`, `-mem=2048`) spelled `--format`, and `run qemu` as `run`."""
    longs = {option for parser in command_path(top, words) for option in parser._option_string_actions}
    rewritten: list[str] = []
    for index, word in enumerate(words):
        if word == "--":
            return rewritten + words[index:]
        name = word.partition("=")[0]
        single_dash_long = word.startswith("-") and not word.startswith("--") and len(name) > 2
        if single_dash_long and name not in longs and f"-{name}" in longs:
            word = f"-{word}"
        rewritten.append(word)
    return drop_run_hypervisor(rewritten)


def command_path(top: argparse.ArgumentParser, words: list[str]) -> list[argparse.ArgumentParser]:
    """The parsers a command line passes through: the top one, its command's, a subcommand's."""
    path = [top]
    for word in words:
        choices = next((a.choices for a in path[-1]._actions if isinstance(a, argparse._SubParsersAction)), {})
        if word in choices:
            path.append(choices[word])
    return path


def drop_run_hypervisor(words: list[str]) -> list[str]:
    """`run qemu PATH ...` as `run PATH ...`: the word right after the command `run`, when more follows it."""
    index = command_index(words)
    if index is None or words[index] != "run" or words[index + 1 : index + 2] != [RUN_HYPERVISOR]:
        return words
    return words if index + 2 == len(words) else words[: index + 1] + words[index + 2 :]


def command_index(words: Sequence[str]) -> int | None:
    """Where the command word is: the first word that is neither an option nor a top-level option's value."""
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("--", "-h", "--help"):
            return None
        if word in TOP_VALUED_OPTIONS:
            index += 1
        elif not word.startswith("-"):
            return index
        index += 1
    return None


def mebibytes(text: str) -> str:
    """`run --mem`: a bare number is MiB, as LinuxKit's `-mem 2048`; a size with a unit stays as given."""
    return f"{text}M" if text.isdigit() else text


def apply_verbosity(args: argparse.Namespace) -> None:
    """LinuxKit's `-v N` mapped onto ours: 0 quiet (where the command has -q), 2 and more --debug."""
    verbosity = getattr(args, "verbosity", None)
    if verbosity is None:
        return
    if verbosity <= 0 and hasattr(args, "quiet"):
        args.quiet = True
    if verbosity >= 2:
        args.debug = True


def add_global_flags(top: argparse.ArgumentParser) -> None:
    """LinuxKit's persistent flags that distrokit takes before the subcommand too."""
    top.add_argument("-v", "--verbose", dest="verbosity", type=int, metavar="N", help=VERBOSITY_HELP)
    top.add_argument(
        "--mirror",
        action="append",
        help="[REGISTRY=]URL to pull REGISTRY's images from, for the commands that pull (as after the subcommand)",
    )


def apply(top: argparse.ArgumentParser) -> None:
    """Global options after every subcommand too, and an example at the end of every --help."""
    for path, sub in subcommands(top):
        # SUPPRESS: an option not given after the subcommand leaves the one given before it alone
        sub.add_argument("--cache", default=argparse.SUPPRESS, help="the store (as before the subcommand)")
        sub.add_argument(
            "--components",
            metavar="DIR",
            default=argparse.SUPPRESS,
            help="component recipes (as before the subcommand)",
        )
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        if "-v" not in sub._option_string_actions:  # `cache gc -v` lists what it removed
            sub.add_argument(
                "-v",
                "--verbose",
                dest="verbosity",
                type=int,
                metavar="N",
                default=argparse.SUPPRESS,
                help=VERBOSITY_HELP,
            )
        sub.epilog = EXAMPLES.get(path, DEFAULT_EXAMPLE.format(command=" ".join(path)))
        sub.formatter_class = argparse.RawDescriptionHelpFormatter


def add_build_flags(build: argparse.ArgumentParser) -> None:
    build.add_argument(
        "-o",
        "--o",
        dest="output_file",
        metavar="FILE",
        help="write the one file of the format (tar by default) to FILE; - for stdout",
    )
    build.add_argument(
        "--docker", action="store_true", help="accepted for LinuxKit compatibility: no Docker daemon is needed"
    )
    build.add_argument(
        "--input-tar",
        metavar="FILE",
        help="a previous build's tar: images whose entries it holds are taken from it, not pulled",
    )


def check_build_args(args: argparse.Namespace) -> list[str]:
    """Fix LinuxKit-style arguments up before the build; the notes to print."""
    notes = []
    if getattr(args, "docker", False):
        notes.append("--docker: distrokit needs no Docker daemon; the option is ignored")
    if STDIN_SPEC in args.spec and args.name is None:
        args.name = STDIN_NAME
    if args.output_file is not None:
        from ..outputs import get_format  # loaded when asked for: the parser starts without it

        args.format = args.format or ["tar"]
        if len(args.format) != 1 or len(get_format(args.format[0]).suffixes) != 1:
            raise BadInput(f"-o writes one file: give one format that makes one file (such as tar), not {args.format}")
        if args.output_file == "-" and getattr(args, "json", False):
            raise BadInput("-o - writes the output to stdout: it cannot be combined with --json")
    if getattr(args, "input_tar", None) and args.pull:
        raise BadInput("--input-tar and --pull cannot be used together: --pull asks for every image afresh")
    return notes


def check_input_tar(input_tar: str, outputs: list[Path]) -> None:
    """The input tar is read while the output is written: the two must be different files."""
    given = Path(input_tar)
    for output in outputs:
        same = given.resolve() == output.resolve() or (given.exists() and output.exists() and given.samefile(output))
        if same:
            raise BadInput(f"--input-tar {input_tar} is also the output file of this build: write the output elsewhere")


def output_folder(cache: Path, name: str) -> Path:
    """Where a build with -o writes before the file is copied out (in the store: builds stay incremental)."""
    return cache / "outputs" / name


def deliver(args: argparse.Namespace, folder: Path, name: str) -> None:
    """Copy the single output file to -o FILE, or stream it to stdout."""
    from ..fsutil import copy_file_atomic
    from ..outputs import get_format

    fmt = get_format(args.format[0])
    (produced,) = fmt.targets(folder / name)
    if args.output_file == "-":
        with produced.open("rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    else:
        copy_file_atomic(produced, Path(args.output_file))
