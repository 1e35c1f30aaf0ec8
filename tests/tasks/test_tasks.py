"""buildlib.tasks: content-keyed doit tasks; what runs is read from doit's own report."""

from __future__ import annotations

from pathlib import Path

from conftest import Built, build, snapshot_store

from buildlib.outputs.initrd import seal_file, seal_path, segment_path
from buildlib.store.images import Store
from buildlib.tasks.families import segment_sealed


def test_first_build_runs_every_step(minimal_build: Built) -> None:
    ran = set(minimal_build.report.executed) | set(minimal_build.report.up_to_date)
    assert {"part:minimal/kernel", "part:minimal/init", "part:minimal/files", "output:minimal/kernel+initrd"} <= ran
    assert any(name.startswith("image:") for name in ran)
    assert {"component:kernel", "component:init"} <= ran
    for suffix in ("-kernel", "-initrd.img", "-cmdline"):
        assert (minimal_build.out_dir / f"minimal{suffix}").is_file()


def test_nothing_changed_runs_no_action(minimal_build: Built) -> None:
    again = build(Path(__file__).parents[2] / "specs" / "minimal.yml", minimal_build.cache, minimal_build.out_dir)
    assert again.report.executed == ()
    assert {"output:minimal/kernel+initrd", "output:minimal/boot"} <= set(again.report.up_to_date)


def test_files_change_reruns_only_files_part_and_output(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(spec_copy, minimal_build.cache, out, name="edited")
    spec_copy.write_text(spec_copy.read_text().replace('echo "== uname -a"', 'echo "== kernel"'))
    rebuilt = build(spec_copy, minimal_build.cache, out, name="edited")
    assert set(rebuilt.report.executed) == {"part:edited/files", "output:edited/kernel+initrd"}


def test_cmdline_change_reruns_only_output(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = build(spec_copy, minimal_build.cache, out, name="cmdline")
    key = (first.state_dir / "kernel.ref").read_text()
    kernel_copy = minimal_build.cache / "kernels" / key
    extracted = kernel_copy.stat().st_mtime_ns
    spec_copy.write_text(spec_copy.read_text().replace("console=ttyS0 quiet", "console=ttyS0"))
    rebuilt = build(spec_copy, minimal_build.cache, out, name="cmdline")
    assert set(rebuilt.report.executed) == {"output:cmdline/boot"}  # the initrd does not hold the cmdline
    assert kernel_copy.stat().st_mtime_ns == extracted  # the same kernel image is not extracted again
    assert (out / "cmdline-cmdline").read_text() == "console=ttyS0"


def test_deleted_output_is_written_again(minimal_build: Built, spec_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    build(spec_copy, minimal_build.cache, out, name="gone")
    (out / "gone-initrd.img").unlink()
    rebuilt = build(spec_copy, minimal_build.cache, out, name="gone")
    assert rebuilt.report.executed == ("output:gone/kernel+initrd",)
    assert (out / "gone-initrd.img").is_file()


def test_spec_without_images_builds(tmp_path: Path) -> None:
    import tarfile

    spec = tmp_path / "only-files.yml"
    spec.write_text("files:\n  - path: etc/motd\n    contents: hello\n    mode: '0644'\n")
    built = build(spec, tmp_path / "cache", tmp_path / "out", formats=("tar",))
    with tarfile.open(built.prefix.with_name("only-files.tar")) as archive:
        motd = archive.extractfile("etc/motd")
        assert motd is not None and motd.read() == b"hello"


def test_segment_sealed_sees_each_part_s_seal_in_a_built_store(minimal_build: Built, tmp_path: Path) -> None:
    """The part check a no-change run makes for every part of every spec (read as bytes, named as text)
    names the seal file the store writes, and fails once that seal or the part's pointer is gone."""
    cache = snapshot_store(minimal_build.cache, tmp_path / "cache")  # its seals are ours to remove
    store = Store(cache, "amd64")
    pointers = sorted((cache / "build" / minimal_build.state).glob("*.segment"))
    assert pointers
    for pointer in pointers:
        key = pointer.read_text().strip()
        assert seal_file(str(cache), key) == str(seal_path(segment_path(cache, key)))
        assert segment_sealed(store, pointer)
    first, last = pointers[0], pointers[-1]
    seal_path(segment_path(cache, first.read_text().strip())).unlink()
    last.unlink()
    assert not segment_sealed(store, first)
    assert not segment_sealed(store, last)


def test_the_components_with_the_most_deb_bytes_are_handed_to_doit_first(minimal_build: Built) -> None:
    from conftest import COMPONENTS

    from buildlib.debian import archive, recipes
    from buildlib.tasks import plan_build
    from buildlib.tasks.families import BuildOptions

    spec = Path(__file__).parents[2] / "specs" / "linuxkit.yml"
    options = BuildOptions(cache=minimal_build.cache, out_dir=minimal_build.out_dir, name="weights")
    plan = plan_build([spec], options, COMPONENTS)
    names = [task["name"] for task in plan.tasks if task["basename"] == "component"]

    def deb_bytes(name: str) -> int:
        pins = archive.cached_pins(minimal_build.cache, recipes.load_recipe(COMPONENTS / name))
        return sum(package.size for package in pins or ())

    weights = [deb_bytes(name) for name in names]
    # the spec names kernel, init, runc, ...: in its own order the weights would not fall
    assert len(names) >= 8 and weights == sorted(weights, reverse=True)
