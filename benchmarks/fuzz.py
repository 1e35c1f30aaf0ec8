"""Issue 11's longer fuzz run: the properties of tests/test_fuzz.py with many more examples.

Each target runs its property from tests/fuzzkit.py under hypothesis with `--scale` times the
default example count, counts what the inputs came to (parsed or refused, merged or refused), and
reports a failure with hypothesis's smallest example. Exit 1 when any property failed.

    .venv/bin/python benchmarks/fuzz.py [--scale 1.0] [--only spec,label,layers,writers] [--seed N]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from fuzzkit import (  # noqa: E402
    check_label_parser,
    check_layers_merge,
    check_spec_parser,
    check_writers_round_trip,
    label_text,
    layer_stack,
    spec_text,
    writer_tree,
)
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# target -> (strategy, property, examples at scale 1)
TARGETS: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], object], int]] = {
    "spec": (spec_text, check_spec_parser, 5000),
    "label": (label_text, check_label_parser, 5000),
    "layers": (layer_stack(), check_layers_merge, 1000),
    "writers": (writer_tree(), check_writers_round_trip, 600),
}


def run_target(name: str, examples: int, chosen_seed: int | None) -> tuple[collections.Counter[str], str]:
    strategy, check, _ = TARGETS[name]
    outcomes: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(strategy)
    def prop(value: Any) -> None:
        outcomes[str(check(value) or "ok")] += 1

    if chosen_seed is not None:
        prop = seed(chosen_seed)(prop)
    try:
        prop()
    except Exception:  # noqa: BLE001 - a property failure is the report
        lines = traceback.format_exc(limit=-3).splitlines()
        return outcomes, "\n".join(line if len(line) < 400 else line[:400] + " ..." for line in lines)
    return outcomes, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every target's example count")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets")
    parser.add_argument("--seed", type=int, help="a fixed seed, to repeat a run")
    args = parser.parse_args()
    failed = False
    print(f"{'target':8} {'examples':>9} {'seconds':>8}  outcomes")
    for name in args.only.split(","):
        examples = max(1, int(TARGETS[name][2] * args.scale))
        started = time.monotonic()
        outcomes, failure = run_target(name, examples, args.seed)
        seconds = time.monotonic() - started
        summary = ", ".join(f"{key} {count}" for key, count in sorted(outcomes.items()))
        print(f"{name:8} {sum(outcomes.values()):>9} {seconds:>8.1f}  {summary}", flush=True)
        if failure:
            failed = True
            print(f"  FAILED:\n{failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
