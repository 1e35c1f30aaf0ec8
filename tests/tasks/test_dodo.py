"""dodo.py: doit's own commands on distrokit's tasks behave as doit users expect."""

from __future__ import annotations

import contextlib
from pathlib import Path

from conftest import dodo_project, doit

from buildlib import cli, tasks


def test_list_clean_and_forget(minimal_build, tmp_path: Path, capsys) -> None:
    root, cache = dodo_project(tmp_path), minimal_build.cache
    listed = doit(root, cache, "list")
    docs = [line.split(None, 1)[1] for line in listed.splitlines() if line.strip()]
    assert len(docs) == 6 and len(set(docs)) == 6, listed  # each family (usage too) in its own words
    doit(root, cache)
    outputs = sorted(p.name for p in (root / "out").iterdir())
    assert outputs == ["doitspec-cmdline", "doitspec-initrd.img", "doitspec-kernel"]
    cleaned = doit(root, cache, "clean")
    assert "removing file" in cleaned and not list((root / "out").iterdir())
    doit(root, cache)  # the next run writes them again
    assert len(list((root / "out").iterdir())) == 3
    # only this spec's tasks: the images and layers are shared with the other tests' builds
    # doit knows a spec's tasks by its state id (its name and spec file): `doit list --all` shows them
    with contextlib.chdir(root):  # doit runs there, and a state id names the spec relative to the build's folder
        state = tasks.spec_state_id("doitspec", [str(root.resolve() / "specs" / "doitspec.yml")], cache)
    parts = [f"part:{state}/{name}" for name in ("kernel", "init", "files")]
    listed_all = doit(root, cache, "list", "--all", "--quiet").split()
    outputs = [task for task in listed_all if task.startswith(f"output:{state}/")]  # stages, boot files, format
    assert f"output:{state}/kernel+initrd" in outputs
    assert f"forgetting output:{state}/kernel+initrd" in doit(root, cache, "forget", *outputs, *parts)
    spec = str(root / "specs" / "doitspec.yml")
    with contextlib.chdir(root):  # where doit ran: the same spec from the same folder is the same state
        assert cli.main(["--cache", str(cache), "explain", spec, "--dir", str(root / "out")]) == 0
    explained = capsys.readouterr().out
    assert "output:doitspec/kernel+initrd: run: no record of its last build" in explained
    assert "never built" not in explained
