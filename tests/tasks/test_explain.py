"""buildlib.tasks.explain: which tasks will run, and which input changed, old key against new."""

from __future__ import annotations

from pathlib import Path

from conftest import COMPONENTS, Built, build, snapshot_store

from buildlib import tasks
from buildlib.outputs.initrd import seal_path, segment_path
from buildlib.tasks.explain import AFTER_UPSTREAM, RUN, UP_TO_DATE, explain


def explained(spec: Path, cache: Path, out: Path, name: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    options = tasks.BuildOptions(cache=cache, out_dir=out, name=name)
    plan = tasks.plan_build([spec], options, COMPONENTS)
    return {item.task: (item.status, item.reasons) for item in explain(plan)}


def test_nothing_to_do_after_a_build(minimal_build: Built) -> None:
    spec = COMPONENTS.parent / "specs" / "minimal.yml"
    result = explained(spec, minimal_build.cache, minimal_build.out_dir, "minimal")
    assert {status for status, _ in result.values()} == {UP_TO_DATE}
    assert any(name.startswith("layer:sha256:") for name in result)


def test_changed_inputs_are_named_with_old_and_new_keys(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(spec_copy, minimal_build.cache, out, name="why")
    spec_copy.write_text(
        spec_copy.read_text().replace("console=ttyS0 quiet", "console=ttyS0").replace("== uname -a", "== kernel")
    )
    result = explained(spec_copy, minimal_build.cache, out, "why")
    status, reasons = result["part:why/files"]
    # first what changed in the spec's words, then the keys
    assert status == RUN and reasons[0] == "files[0] (etc/distrokit/boot.d/90-report)"
    assert len(reasons) == 2 and reasons[1].startswith("key 'spec' changed: ")
    old, new = reasons[1].split(": ", 1)[1].split(" -> ")
    assert old != new
    assert result["output:why/boot"] == (
        RUN,
        (
            "kernel.cmdline: console=ttyS0 quiet -> console=ttyS0",
            "key 'cmdline' changed: console=ttyS0 quiet -> console=ttyS0",
        ),
    )
    assert result["part:why/kernel"][0] == UP_TO_DATE


def test_missing_output_and_upstream_are_explained(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    built = build(spec_copy, minimal_build.cache, out, name="gone")
    (out / "gone-kernel").unlink()
    result = explained(spec_copy, minimal_build.cache, out, "gone")
    assert result["output:gone/boot"] == (RUN, (f"missing output: {out / 'gone-kernel'}",))
    (built.state_dir / "init.segment").unlink()
    result = explained(spec_copy, minimal_build.cache, out, "gone")
    assert result["part:gone/init"][0] == RUN
    assert result["output:gone/kernel+initrd"][0] in (RUN, AFTER_UPSTREAM)


def test_never_built_spec(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    result = explained(spec_copy, minimal_build.cache, tmp_path / "out", "fresh")
    assert result["part:fresh/init"] == (RUN, ("never built",))


def test_a_new_digest_behind_a_name_is_named_with_both_digests(tmp_path: Path, capsys) -> None:
    from registry import random_layer, stored_image

    from buildlib import cli
    from buildlib.spec.refs import ImageRef
    from buildlib.store.images import Store

    store, ref = Store(tmp_path / "cache"), ImageRef.parse("localhost/test/app:1")
    old = stored_image(store, ref, [random_layer(store, 1000, "old")])
    spec = tmp_path / "app.yml"
    spec.write_text(f"onboot:\n  - name: app\n    image: {ref}\n")
    argv = ["--cache", str(tmp_path / "cache"), "build", str(spec), "-f", "tar", "--dir", str(tmp_path / "out"), "-q"]
    assert cli.main(argv) == 0
    new = stored_image(store, ref, [random_layer(store, 1000, "new")])  # as a `distrokit pull` of a new push does
    capsys.readouterr()
    assert cli.main(["--cache", str(tmp_path / "cache"), "explain", *argv[3:-1]]) == 0
    lines = capsys.readouterr().out.splitlines()
    said = f"image:{ref}: run: image {ref}: digest {old[:19]}.. -> {new[:19]}.."
    assert said in lines, lines


def test_a_failed_store_check_says_what_no_longer_holds_once(
    minimal_build: Built, spec_copy: Path, tmp_path: Path
) -> None:
    """Not "a check of the store failed" (twice): the condition the check found untrue, in words, once."""
    cache = snapshot_store(minimal_build.cache, tmp_path / "cache")  # its seals are ours to break
    out = tmp_path / "out"
    built = build(spec_copy, cache, out, name="sealed")
    seal_path(segment_path(cache, (built.state_dir / "init.segment").read_text().strip())).unlink()
    result = explained(spec_copy, cache, out, "sealed")
    assert result["part:sealed/init"] == (
        RUN,
        ("not so any more: the segment this part wrote is in the store with its key file",),
    )
