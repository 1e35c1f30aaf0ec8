"""Issue 23 benchmark: specs/linuxkit.yml's initrd size and boot time under QEMU (TCG), this tree
against an older revision, side by side in one run.

Each tree builds its own specs/linuxkit.yml plus one file, a last boot.d hook that powers off, so a
boot ends by itself once the init has started the services (the spec itself runs until stopped). A
boot's figures: the guest's uptime at the init's `booted` mark (`distrokit-timeline`), and QEMU's
lifetime to power-off. Boots of the two trees take turns; medians are printed, with the load average
before and after (the machine is shared).

    .venv/bin/python benchmarks/linuxkit_spec.py [--runs 3] [--before main] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from boot import Tree, checkout, fmt, shared_debs  # noqa: E402

from buildlib.guest import runner, timeline  # noqa: E402

SPEC = "linuxkit-bench"
# benchmarks/linuxkit_spec.py's addition: power off once booted, so a boot ends by itself
POWER_OFF_HOOK = {"path": "etc/distrokit/boot.d/99-bench-poweroff", "mode": "0755", "contents": "#!/bin/sh\npoweroff\n"}
BOOTED = re.compile(rb"distrokit-timeline: ([0-9.]+) booted")


def write_bench_spec(source: Path) -> None:
    """specs/linuxkit.yml of that tree with the power-off hook added to its `files:`."""
    spec = yaml.safe_load((source / "specs" / "linuxkit.yml").read_text())
    spec["files"] = [*spec.get("files", []), POWER_OFF_HOOK]
    (source / "specs" / f"{SPEC}.yml").write_text(yaml.safe_dump(spec, sort_keys=False))


def one_boot(tree: Tree) -> tuple[float, float]:
    """(uptime at `booted`, QEMU's lifetime) for one boot of the tree's spec."""
    seen = bytearray()
    options = runner.RunOptions(prefix=tree.out / SPEC, accel="tcg", timeout=600, extra_cmdline=timeline.CMDLINE_FLAG)
    result = runner.run(options, on_output=seen.extend)
    booted = BOOTED.search(bytes(seen))
    if booted is None:
        raise SystemExit(
            f"{tree.label}: no `booted` mark on the console:\n{bytes(seen)[-2000:].decode(errors='replace')}"
        )
    return float(booted.group(1)), result.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/distrokit-linuxkit-bench"))
    parser.add_argument("--runs", type=int, default=3, help="boots per tree")
    parser.add_argument("--before", metavar="REV", default="main", help="the older revision (default: main)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    debs, home = workdir / "debs", workdir / "home"
    debs.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    after_source = checkout("HEAD", workdir / "src-after")  # the committed tree, as `before` is
    before_source = checkout(args.before, workdir / "src-before")
    trees = [
        Tree(f"before ({args.before})", before_source, workdir / "cache-before", workdir / "out-before"),
        Tree("after (HEAD)", after_source, workdir / "cache-after", workdir / "out-after"),
    ]
    for tree in trees:
        shared_debs(tree.cache, debs)
        write_bench_spec(tree.source)
        tree.build(SPEC, home)

    load_before = os.getloadavg()
    runs: dict[str, list[tuple[float, float]]] = {tree.label: [] for tree in trees}
    for _ in range(args.runs):
        for tree in trees:
            runs[tree.label].append(one_boot(tree))
    load_after = os.getloadavg()

    print(
        f"load average (1, 5, 15 min) before: {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}; "
        f"after: {load_after[0]:.1f} {load_after[1]:.1f} {load_after[2]:.1f} (2 cores)"
    )
    for tree in trees:
        size = (tree.out / f"{SPEC}-initrd.img").stat().st_size
        booted = [up for up, _ in runs[tree.label]]
        lifetime = [seconds for _, seconds in runs[tree.label]]
        print(
            f"specs/linuxkit.yml, {tree.label}: initrd {size:,} bytes ({size / 1e6:.2f} MB); "
            f"booted at {statistics.median(booted):.2f} s of uptime (runs {fmt(booted)}); "
            f"QEMU to power-off {statistics.median(lifetime):.2f} s (runs {fmt(lifetime)})"
        )


if __name__ == "__main__":
    main()
