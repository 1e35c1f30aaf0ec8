"""Issue 15: the long run of the cache-truth property test.

Random edit sequences on a base spec (tests/cachetruth.py: add, remove, swap and move containers;
their command, env, capabilities, binds, readonly, namespaces, image and tag; `files` entries and a
source's content, mode and owner; volumes, the cmdline, compression, output format; back to an
earlier spec). After every edit the spec is built incrementally in one store, with the audit on (up-to-date
tasks recomputed, undeclared reads caught), and from a clean store (a hard-linked copy of a store holding
only the pulled images), and every output file's sha256 is compared. Images come from a docker-registry
on loopback.

Issue 24, order does not matter: `--jobs N` runs doit with N threads; `--shuffle` starts each sequence
from a base spec in a drawn format (kernel+initrd, tar, kernel+squashfs, kernel+erofs, kernel+iso,
raw-bios) and shuffles doit's task order (DISTROKIT_SHUFFLE_SEED) from a drawn seed, every build its
own order; `--fresh-names` gives every build of half the sequences (drawn) a new output name, so
the other half still meets up-to-date output tasks.

    .venv/bin/python benchmarks/cache_truth.py [--examples 200] [--max-edits 12] [--seed N]
        [--jobs 4] [--shuffle] [--fresh-names]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from cachetruth import FORMATS, Edit, Schedule, Truth, base_spec, edits, pull_images, push_images  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from registry import running_registry  # noqa: E402

from buildlib.store.images import Store  # noqa: E402
from buildlib.store.transport import Network  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=200, help="edit sequences to try")
    parser.add_argument("--max-edits", type=int, default=12, help="longest edit sequence")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="doit's -n for every build")
    parser.add_argument("--shuffle", action="store_true", help="shuffled task order, every format")
    parser.add_argument("--fresh-names", action="store_true", help="half the sequences: a new output name per build")
    args = parser.parse_args()
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)  # a folder named on the command line may not exist yet
    workdir = Path(tempfile.mkdtemp(prefix="cache-truth-", dir=args.workdir))
    counts = {"sequences": 0, "builds": 0, "edits": 0}
    started = time.monotonic()
    try:
        with running_registry(workdir / "registry") as registry:
            push_images(Store(workdir / "source"), registry.host, Network())
            pulled = workdir / "pulled"
            pull_images(Store(pulled), registry.host, Network())

            @seed(args.seed)
            @settings(
                max_examples=args.examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                print_blob=True,
            )
            @given(
                st.lists(edits(), min_size=1, max_size=args.max_edits),
                st.sampled_from(FORMATS if args.shuffle else ("kernel+initrd",)),
                st.integers(0, 1 << 16),
                st.booleans() if args.fresh_names else st.just(False),
            )
            def sequence_builds_what_a_clean_store_builds(
                sequence: list[Edit], fmt: str, order_seed: int, fresh: bool
            ) -> None:
                run = workdir / f"run-{counts['sequences']}"
                counts["sequences"] += 1
                shuffle = order_seed if args.shuffle else None
                schedule = Schedule(jobs=args.jobs, shuffle=shuffle, fresh_names=fresh)
                truth = Truth(registry.host, pulled, run, REPO / "components", schedule=schedule)
                counts["edits"] += len(sequence)
                try:
                    truth.run(sequence, start=replace(base_spec(), format=fmt))
                finally:
                    counts["builds"] += truth.builds
                    shutil.rmtree(run, ignore_errors=True)

            failure = None
            try:
                sequence_builds_what_a_clean_store_builds()
            except AssertionError as error:
                failure = error
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    minutes = (time.monotonic() - started) / 60
    setting = Schedule(args.jobs, 0 if args.shuffle else None, args.fresh_names).describe().replace(" from seed 0", "")
    print(
        f"seed {args.seed}: {counts['sequences']} edit sequences, {counts['edits']} edits, "
        f"{counts['builds']} builds (incremental + clean) in {minutes:.1f} min, {setting}"
    )
    if failure is not None:
        print(f"FOUND: {failure}")
        return 1
    print("found nothing: every incremental build gave the clean build's bytes, and every audit passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
