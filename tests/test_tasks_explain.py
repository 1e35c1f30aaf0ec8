"""buildlib.tasks.explain: which tasks will run, and which input changed, old key against new."""

from __future__ import annotations

from pathlib import Path

from conftest import COMPONENTS, Built, build

from buildlib import tasks
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
    assert status == RUN and len(reasons) == 1 and reasons[0].startswith("input 'spec' changed: ")
    old, new = reasons[0].split(": ", 1)[1].split(" -> ")
    assert old != new
    assert result["output:why/boot"] == (RUN, ("input 'cmdline' changed: console=ttyS0 quiet -> console=ttyS0",))
    assert result["part:why/kernel"][0] == UP_TO_DATE


def test_missing_output_and_upstream_are_explained(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(spec_copy, minimal_build.cache, out, name="gone")
    (out / "gone-kernel").unlink()
    result = explained(spec_copy, minimal_build.cache, out, "gone")
    assert result["output:gone/boot"] == (RUN, (f"missing output: {out / 'gone-kernel'}",))
    (minimal_build.cache / "build" / "gone" / "init.segment").unlink()
    result = explained(spec_copy, minimal_build.cache, out, "gone")
    assert result["part:gone/init"][0] == RUN
    assert result["output:gone/kernel+initrd"][0] in (RUN, AFTER_UPSTREAM)


def test_never_built_spec(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    result = explained(spec_copy, minimal_build.cache, tmp_path / "out", "fresh")
    assert result["part:fresh/init"] == (RUN, ("never built",))
