"""buildlib.cli: bad input gives one clear line, the right exit code, and nothing in --dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import COMPONENTS, SPECS

from buildlib import cli
from buildlib.spec.refs import ImageRef
from buildlib.store.images import Store


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_not_yaml_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "broken.yml"
    spec.write_text("kernel:\n  image: x\n  cmdline: [unclosed\n")
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(out))
    assert code == 2
    assert f"{spec}:" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_key_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "typo.yml"
    spec.write_text("kernel:\n  image: x\n  cmdlin: foo\n")
    code, err = run_cli(capsys, "validate", str(spec))
    assert code == 2 and "typo.yml:3:3" in err and "cmdlin" in err


def test_unknown_component_names_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "nocomp.yml"
    spec.write_text('init:\n  - "@pkg:./no-such-component"\n')
    out = tmp_path / "out"
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(out))
    assert code == 2 and "no-such-component" in err
    assert not out.exists()
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "pkg", "build", str(tmp_path / "nothing"))
    assert code == 2 and "nothing" in err


def test_missing_image_names_it_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "missing.yml"
    # Port 9 on loopback: nothing listens, so every attempt fails at once without leaving this machine.
    spec.write_text("init:\n  - 127.0.0.1:9/distrokit/absent:1\n")
    out = tmp_path / "out"
    argv = ["--cache", str(tmp_path / "c"), "build", str(spec), "--dir", str(out), "--retries", "2", "-f", "tar"]
    code, err = run_cli(capsys, *argv)
    assert code == 1 and "after 2 attempts" in err
    assert "127.0.0.1:9/distrokit/absent:1" in err and "Traceback" not in err
    assert not out.exists()
    # nothing poisoned: the store has no name for the image that failed
    assert Store(tmp_path / "c").lookup(ImageRef.parse("127.0.0.1:9/distrokit/absent:1")) is None
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and "refs" in p.parts]


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    spec = tmp_path / "typo.yml"
    spec.write_text("init: []\nkernl: {}\n")
    with pytest.raises(Exception, match="kernl"):
        cli.main(["--debug", "validate", str(spec)])


def test_dry_run_prints_the_normalised_spec(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["build", "--dry-run", str(COMPONENTS.parent / "specs" / "minimal.yml")])
    out = capsys.readouterr().out
    assert code == 0 and "docker.io/distrokit/kernel:" in out and "90-report" in out


def test_explain_keys_tasks_as_the_build_did(minimal_build, tmp_path: Path, capsys) -> None:
    spec = str(COMPONENTS.parent / "specs" / "minimal.yml")
    common = ["--cache", str(minimal_build.cache)]
    where = ["--dir", str(tmp_path), "--name", "gz", "--compression", "gzip"]
    assert cli.main([*common, "build", spec, *where, "-q"]) == 0
    capsys.readouterr()
    assert cli.main([*common, "explain", spec, *where]) == 0
    assert "everything is up to date" in capsys.readouterr().out
    assert cli.main([*common, "explain", spec, "--dir", str(tmp_path), "--name", "gz"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "part:gz/init: run: --compression: gzip -> zstd" in lines  # the option as typed, then the key
    assert "part:gz/init: run: key 'compression' changed: gzip -> zstd" in lines


def test_pull_from_local_oci_archive_and_layout(minimal_build, tmp_path: Path, capsys) -> None:
    import subprocess

    from buildlib.debian.recipes import load_recipe

    init = load_recipe(COMPONENTS / "init").ref
    archive = tmp_path / "init.tar"
    assert cli.main(["--cache", str(minimal_build.cache), "cache", "export", str(init), str(archive)]) == 0
    layout = tmp_path / "layout"
    # as distrokit does: keep uncompressed layers as they are, so the digest stays
    copy = ["skopeo", "copy", "-q", "--dest-oci-accept-uncompressed-layers"]
    subprocess.run([*copy, f"oci-archive:{archive}", f"oci:{layout}:v1"], check=True)
    fresh = ["--cache", str(tmp_path / "fresh")]
    assert cli.main([*fresh, "pull", f"oci-archive:{archive}", "--name", "local/init:a", "-q"]) == 0
    assert cli.main([*fresh, "pull", f"oci:{layout}:v1", "--name", "local/init:b", "-q"]) == 0
    store, original = Store(tmp_path / "fresh"), Store(minimal_build.cache)
    digest = original.lookup(init)
    assert store.lookup(ImageRef.parse("local/init:a")) == digest
    assert store.lookup(ImageRef.parse("local/init:b")) == digest
    capsys.readouterr()
    assert cli.main([*fresh, "pull", f"oci:{layout}:v1", "-q"]) == 2
    assert "--name" in capsys.readouterr().err
    # an archive names its image: without --name, pull takes that name, as `cache import` does
    other = ["--cache", str(tmp_path / "other")]
    assert cli.main([*other, "pull", f"oci-archive:{archive}", "-q"]) == 0
    assert Store(tmp_path / "other").lookup(init) == digest


def test_a_failed_task_says_its_error_once(minimal_build, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "notakernel.yml"
    # the init image has no /kernel: only the task that reads it can find out
    spec.write_text(f'kernel:\n  image: "@pkg:{COMPONENTS}/init"\ninit:\n  - "@pkg:{COMPONENTS}/init"\n')
    argv = ["--cache", str(minimal_build.cache), "build", str(spec), "--dir", str(tmp_path / "out")]
    code, err = run_cli(capsys, *argv)
    assert code == 1
    assert err.count("has no file /kernel") == 1, err
    assert "TaskFailed" not in err and "####" not in err and "<stderr>" not in err
    with pytest.raises(Exception, match="has no file /kernel"):
        cli.main(["--debug", *argv])
    assert "<stderr>" in capsys.readouterr().err  # --debug keeps doit's own report


def test_an_unresolvable_registry_is_retried_as_a_network_failure(tmp_path: Path, capsys) -> None:
    # `.invalid` never resolves (RFC 2606): the lookup fails at once, with no network needed
    ref = "registry.distrokit-test.invalid/app:1"
    code, err = run_cli(capsys, "--cache", str(tmp_path / "c"), "pull", ref, "--retries", "2")
    assert code == 1
    assert "attempt 1 failed" in err  # retried like a refused connection
    assert "after 2 attempts" in err and "check the network" in err and "may be a typo" in err
    assert "check the name and tag" not in err


def test_explain_names_a_changed_command_in_spec_terms(minimal_build, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "svc.yml"
    text = (
        f'kernel:\n  image: "@pkg:{COMPONENTS}/kernel"\ninit:\n  - "@pkg:{COMPONENTS}/init"\n'
        f'services:\n  - name: first\n    image: "@pkg:{COMPONENTS}/init"\n'
        f'  - name: getty\n    image: "@pkg:{COMPONENTS}/init"\n    command: ["/bin/sh"]\n'
    )
    spec.write_text(text)
    common = ["--cache", str(minimal_build.cache)]
    where = ["--dir", str(tmp_path / "out")]
    assert cli.main([*common, "build", str(spec), *where, "-q"]) == 0
    spec.write_text(text.replace('["/bin/sh"]', '["/bin/sh", "-l"]'))
    capsys.readouterr()
    assert cli.main([*common, "explain", str(spec), *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    bundle = [line for line in lines if line.startswith("part:svc/services-getty: run: ")]
    assert bundle[0].endswith('services[1] (getty): command: ["/bin/sh"] -> ["/bin/sh","-l"]'), lines
    assert any("key " in line for line in bundle[1:])  # the keys come after the spec's words
    assert not any("services-first" in line for line in lines)  # the other container is untouched
    assert not any("Whether" in line or "not satisfied" in line for line in lines)
    # a rename: the renamed container is new, and the other one reruns for a reason it names
    spec.write_text(text.replace("name: first", "name: primero"))
    assert cli.main([*common, "explain", str(spec), *where]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any("services[0] (primero) is new to this build" in line for line in lines), lines
    assert any(line.startswith("part:svc/services-getty: run: ") and "container ids changed" in line for line in lines)


@pytest.mark.parametrize("command", ["sbom", "explain"])
def test_commands_that_pull_take_the_pull_flags(command: str, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "remote.yml"
    spec.write_text("init:\n  - registry.distrokit-test.invalid/app:1\n")
    # the mirror (port 9 on loopback: nothing listens) is asked instead of the unresolvable registry
    mirror = ["--mirror", "registry.distrokit-test.invalid=http://127.0.0.1:9", "--insecure-registry", "127.0.0.1:9"]
    argv = ["--cache", str(tmp_path / "c"), command, str(spec), *mirror, "--retries", "1", "--arch", "arm64"]
    if command == "explain":
        argv += ["-f", "tar", "--pull"]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    if command == "explain":  # explain pulls nothing, even in a new store: it says the image task would run
        assert code == 0 and "image:registry.distrokit-test.invalid/app:1: run: never built" in out, out + err
        return
    assert code == 1 and "127.0.0.1:9" in err and "after 1 attempt" in err, err


def test_pkg_naming_the_recipe_file_says_name_the_folder(tmp_path: Path, capsys) -> None:
    spec = tmp_path / "recipe.yml"
    spec.write_text(f'init:\n  - "@pkg:{COMPONENTS}/init/component.yml"\n')
    code, err = run_cli(capsys, "validate", str(spec))
    assert code == 2 and "name the folder, not the recipe file" in err and f"({COMPONENTS / 'init'})" in err


def test_run_takes_a_file_of_the_output_and_shows_units(tmp_path: Path, capsys) -> None:
    (tmp_path / "hello-kernel").write_bytes(b"not booted: the initrd is missing")
    code, err = run_cli(capsys, "run", str(tmp_path / "hello-kernel"))
    # the prefix was found from the file: the error is about the rest of the output, not about hello-kernel-kernel
    assert code == 2 and f"nothing to boot at {tmp_path / 'hello'}:" in err and "hello-initrd.img" in err
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    usage = " ".join(capsys.readouterr().out.split())
    assert "with a unit: 512M, 2G (default 512M)" in usage and "virtual CPUs (default 1)" in usage


def test_the_parser_loads_no_heavy_module() -> None:
    """`distrokit --help` and the start of every command: doit, rich, yaml and sh load when used."""
    import subprocess
    import sys

    probe = "import sys; from buildlib import cli; cli.parser(); print(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    heavy = {"doit", "rich", "yaml", "sh", "buildlib.tasks", "buildlib.spec.model", "buildlib.guest.runner"}
    assert not (heavy | {"buildlib.guest.instance"}) & loaded


def test_a_command_line_builds_its_own_command_parser_alone() -> None:
    """`build` parses without loading the run, transfer, store or release commands' modules."""
    import subprocess
    import sys

    others = {"buildlib.cli.run", "buildlib.cli.transfer", "buildlib.cli.store", "buildlib.cli.release"}
    probe = (
        "import sys; from buildlib import cli; "
        "args = cli.parser(sys.argv[1:]).parse_args(sys.argv[1:]); "
        "print(args.command, ' '.join(sorted(sys.modules)))"
    )
    for argv, command in (
        (["--cache", "build", "build", "a.yml"], "build"),  # an option's value is not the command
        (["validate", "--cache", "x", "a.yml"], "validate"),
    ):
        done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
        named, *loaded = done.stdout.split()
        assert named == command and not others & set(loaded)


def test_without_a_known_command_every_command_is_offered(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.command_named(["--debug", "--cache", "c", "pull", "x"]) == "pull"
    assert cli.command_named(["--cache", "c"]) is None and cli.command_named(["--", "build"]) is None
    assert cli.command_named(["-h", "build"]) is None
    with pytest.raises(SystemExit):
        cli.main(["--cache", "c", "biuld", "a.yml"])
    err = capsys.readouterr().err
    assert "invalid choice: 'biuld'" in err
    assert all(command in err for command in cli.GROUP_OF)
    with pytest.raises(SystemExit):
        cli.main(["--help", "build"])
    out = capsys.readouterr().out
    assert all(command in out for command in cli.GROUP_OF)


def test_a_command_collects_cycles_rarely_and_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    import gc

    before = gc.get_threshold()
    seen = []
    with cli.rare_collections(50_000):
        seen.append(gc.get_threshold())
    assert seen == [(50_000, *before[1:])]
    assert gc.get_threshold() == before
    spec = tmp_path / "s.yml"
    spec.write_text("onboot: []\n")
    young = []  # collections run under the restored threshold

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and gc.get_threshold()[0] == before[0]:
            young.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        cli.main(["validate", str(spec)])
        kept = [[] for _ in range(100)]  # fewer new objects than the restored threshold
    finally:
        gc.callbacks.remove(seen)
    assert gc.get_threshold() == before and len(kept) == 100
    # what the command allocated went to the oldest generation, not to a young collection, and nothing stays frozen
    assert not young and gc.get_freeze_count() == 0


def test_a_process_that_ran_a_command_exits_without_collecting_its_objects() -> None:
    """Its objects are frozen at exit, not while it goes on (a test or a dodo.py calling main keeps its
    collector), and Python's finalization then does not run the collector over them all."""
    import subprocess
    import sys

    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: print('at exit', gc.get_freeze_count() > 0))\n"  # registered first: runs last
        "from buildlib import cli\n"
        "for _ in range(2):\n"
        "    assert cli.main(['validate', sys.argv[1]]) == 0\n"
        "print('after main', gc.get_freeze_count() > 0)\n"
    )
    spec = SPECS / "minimal.yml"
    done = subprocess.run([sys.executable, "-c", probe, str(spec)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["after", "main", "False", "at", "exit", "True"]


def test_every_command_is_known_by_the_group_that_registers_it() -> None:
    """GROUP_OF names the module of every command the full parser has (a command missing there would
    still work, through the full parser, but pay for building every command's parser)."""
    import argparse
    import importlib

    for group in cli.COMMAND_GROUPS:
        top = argparse.ArgumentParser()
        importlib.import_module(f"buildlib.cli.{group}").register(top.add_subparsers())
        (commands,) = [action for action in top._actions if isinstance(action, argparse._SubParsersAction)]
        assert {command: cli.GROUP_OF.get(command) for command in commands.choices} == dict.fromkeys(
            commands.choices, group
        )
