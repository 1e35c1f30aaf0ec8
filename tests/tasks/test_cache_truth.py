"""Cache truth: whatever edits a spec went through, an incremental build in a long-lived store gives
exactly the bytes a clean build gives. Regression tests name the edit sequence that once broke it;
a bounded property test draws random sequences (benchmarks/cache_truth.py runs a long one)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from cachetruth import FORMATS, Box, FileItem, Schedule, SpecModel, Truth, base_spec, edits
from conftest import COMPONENTS, build
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from registry import Registry

from buildlib.store.usage import read_usages
from buildlib.upkeep import cache

pytestmark = pytest.mark.registry


@pytest.fixture()
def truth(truth_images: Path, registry: Registry, tmp_path: Path) -> Truth:
    return Truth(registry.host, truth_images, tmp_path, COMPONENTS)


def run_edits(truth: Truth, model: SpecModel, steps: list[tuple[str, SpecModel]]) -> None:
    history: list[str] = []
    truth.check(model, history)
    for name, changed in steps:
        history.append(name)
        truth.check(changed, history)


def test_swap_two_onboot_containers_and_back(truth: Truth) -> None:
    """The known staleness: `installed` and the SBOM kept the old order after a swap (issue 15)."""
    base = base_spec()
    swapped = replace(base, onboot=base.onboot[::-1])
    run_edits(truth, base, [("swap onboot", swapped), ("swap onboot back", base)])


def test_swap_two_services_then_change_one(truth: Truth) -> None:
    """The initrd joins the segments in part order; a set of file dependencies has none."""
    base = replace(base_spec(), services=(Box("web", "gamma"), Box("db", "alpha", tag="v2")))
    swapped = replace(base, services=base.services[::-1])
    changed = replace(swapped, services=(swapped.services[0], replace(swapped.services[1], env=("A=1",))))
    run_edits(truth, base, [("swap services", swapped), ("env of web", changed)])


def test_source_rewritten_at_once_with_the_same_size(truth: Truth) -> None:
    """A source edited in place within one mtime tick, to the same size: its content decides."""
    base = base_spec()
    (source,) = base.sources
    steps = [
        (f"source data {n}", replace(base, sources=(replace(source, data=data),)))
        for n, data in enumerate([b"secret-2\n", b"secret-3\n", b"secret-1\n"])
    ]
    run_edits(truth, base, steps)


def test_file_mode_owner_and_format_changes(truth: Truth) -> None:
    base = base_spec()
    moded = replace(base, files=(base.files[0], replace(base.files[1], mode="0644", uid="web")))
    run_edits(
        truth,
        base,
        [
            ("file mode and owner", moded),
            ("gzip", replace(moded, compression="gzip")),
            ("tar", replace(moded, format="tar")),
            ("back to the base", base),
        ],
    )


def test_source_date_epoch_changes(truth: Truth) -> None:
    """Outputs key the epoch generated timestamps take; a part that stamps one must key it too."""
    base = base_spec()
    steps = [("SOURCE_DATE_EPOCH=1700000000", replace(base, epoch="1700000000")), ("epoch unset", base)]
    run_edits(truth, replace(base, format="tar"), [(name, replace(m, format="tar")) for name, m in steps])


def test_kernel_binary_and_modules_tar_changes(truth: Truth) -> None:
    base = base_spec()
    other = replace(base, kernel=(("binary", "boot/vmlinuz"),))
    bare = replace(other, kernel=(("binary", "boot/vmlinuz"), ("tar", "none")))
    steps = [("binary: boot/vmlinuz", other), ("tar: none", bare), ("tar", replace(bare, format="tar")), ("back", base)]
    run_edits(truth, base, steps)


def test_volume_images_and_oci_layouts(truth: Truth) -> None:
    base = replace(base_spec(), volumes=("data", "cache"))
    imaged = replace(base, volume_images=(("cache", "alpha:v1"),))
    oci = replace(base, volume_images=(("cache", "alpha:v2 oci"), ("data", "beta:v2")))
    run_edits(truth, base, [("cache from alpha:v1", imaged), ("oci layout", oci), ("no images", base)])


def test_two_specs_of_one_base_name_share_a_store(truth_images: Path, tmp_path: Path, registry: Registry) -> None:
    """/a/hello.yml and /b/hello.yml neither rebuild each other nor lose each other's entries to gc."""
    from cachetruth import copy_store, write_world

    store = copy_store(truth_images, tmp_path / "store")
    a = write_world(base_spec(), registry.host, tmp_path / "a").rename(tmp_path / "a" / "hello.yml")
    other = replace(base_spec(), files=(FileItem("etc/motd", contents="other\n"),))
    b = write_world(other, registry.host, tmp_path / "b").rename(tmp_path / "b" / "hello.yml")
    first_a = build(a, store, tmp_path / "out-a")
    first_b = build(b, store, tmp_path / "out-b")
    assert first_a.state != first_b.state
    again_a = build(a, store, tmp_path / "out-a")
    again_b = build(b, store, tmp_path / "out-b")
    assert [t for t in again_a.report.executed if t.startswith(("part:", "output:"))] == []
    assert [t for t in again_b.report.executed if t.startswith(("part:", "output:"))] == []
    states = sorted(record.state_id for _, record in read_usages(store))
    assert states == sorted([first_a.state, first_b.state])
    cache.gc(store)
    after_gc_a = build(a, store, tmp_path / "out-a")
    after_gc_b = build(b, store, tmp_path / "out-b")
    assert [t for t in after_gc_a.report.executed + after_gc_b.report.executed if t.startswith("part:")] == []


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(edits(), min_size=1, max_size=6))
def test_random_edit_sequences_build_what_a_clean_store_builds(
    truth_images: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory, sequence: list
) -> None:
    Truth(registry.host, truth_images, tmp_path_factory.mktemp("truth"), COMPONENTS).run(sequence)


# Each setting a few examples (CI time matters); benchmarks/cache_truth.py --jobs 4 --shuffle runs long.
SCHEDULES = {
    "j2-shuffled": Schedule(jobs=2, shuffle=0),
    "j4-shuffled-fresh-names": Schedule(jobs=4, shuffle=0, fresh_names=True),
}


@pytest.mark.parametrize("schedule", SCHEDULES.values(), ids=list(SCHEDULES))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FORMATS), st.integers(0, 1 << 16), st.lists(edits(), min_size=1, max_size=3))
def test_random_edit_sequences_in_any_order_and_format(
    truth_images: Path,
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
    schedule: Schedule,
    fmt: str,
    seed: int,
    sequence: list,
) -> None:
    """The property under threads and shuffled task orders, from a base spec in any format."""
    workdir = tmp_path_factory.mktemp("truth")
    truth = Truth(registry.host, truth_images, workdir, COMPONENTS, schedule=replace(schedule, shuffle=seed))
    truth.run(sequence, start=replace(base_spec(), format=fmt))


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FORMATS), st.integers(0, 1 << 16), st.lists(edits(), min_size=1, max_size=6))
def test_random_edit_sequences_in_any_order_and_format_longer(
    truth_images: Path,
    registry: Registry,
    tmp_path_factory: pytest.TempPathFactory,
    fmt: str,
    seed: int,
    sequence: list,
) -> None:
    schedule = Schedule(jobs=4, shuffle=seed, fresh_names=seed % 2 == 0)
    truth = Truth(registry.host, truth_images, tmp_path_factory.mktemp("truth"), COMPONENTS, schedule=schedule)
    truth.run(sequence, start=replace(base_spec(), format=fmt))


def test_an_output_edited_by_hand_is_written_again(truth: Truth) -> None:
    """The output folder is the user's: a build after an edit there gives the clean bytes back."""
    base = base_spec()
    truth.check(base, [])
    initrd = truth.workdir / "out" / "truth-initrd.img"
    data = bytearray(initrd.read_bytes())
    data[100] ^= 0xFF
    initrd.write_bytes(bytes(data))
    truth.check(base, ["one byte of the initrd flipped by hand"])


# Order does not matter (issue 24): every format, several jobs, doit's task order shuffled, fresh names.
ANY_ORDER = Schedule(jobs=4, shuffle=24, fresh_names=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_builds_what_a_clean_store_builds_in_any_order(
    truth_images: Path, registry: Registry, tmp_path: Path, fmt: str
) -> None:
    """The edits of order and content the property test draws most, on each kind of writer, under -j 4
    with a shuffled task order and a new output name per build."""
    truth = Truth(registry.host, truth_images, tmp_path, COMPONENTS, schedule=ANY_ORDER)
    base = replace(base_spec(), format=fmt)
    (source,) = base.sources
    steps = [
        ("swap onboot", replace(base, onboot=base.onboot[::-1])),
        ("source data", replace(base, sources=(replace(source, data=b"secret-2\n"),))),
        ("a second service", replace(base, services=(*base.services, Box("db", "beta", tag="v2")))),
    ]
    run_edits(truth, base, steps)


@pytest.mark.parametrize("fmt", ["kernel+erofs", "kernel+squashfs", "kernel+iso"])
def test_a_new_command_line_leaves_an_image_of_the_root_as_a_clean_build_writes_it(
    truth_images: Path, registry: Registry, tmp_path_factory: pytest.TempPathFactory, fmt: str
) -> None:
    """These formats' image of the root ignores the command line (their tasks stay up to date when it
    changes), so its bytes may not depend on it: the erofs image's UUID once did (found by the property
    test above, with its seed)."""
    schedule = Schedule(jobs=4, shuffle=1, fresh_names=False)
    truth = Truth(registry.host, truth_images, tmp_path_factory.mktemp("truth"), COMPONENTS, schedule=schedule)
    truth.run([("cmdline", 1, 0, 0)], start=replace(base_spec(), format=fmt))
