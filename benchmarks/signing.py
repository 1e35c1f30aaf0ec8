"""Benchmark: what a signed pull costs against an unsigned one, and what signing adds to a push.

One image (random layers, --size MB in all) is pushed to a docker-registry on 127.0.0.1 twice: under
`bench/signed` with a GPG signature (a key made here, in a temporary GNUPGHOME) and under `bench/plain`
without. Then, alternating in the same run, each pull goes into a fresh store: the plain one with no
policy (as before), the plain one under a policy accepting anything (the --policy flag alone), and the
signed one under a policy requiring the key (skopeo fetches the lookaside signature and gpgme verifies
it). Also times a small image, where the fixed cost shows. Run: `.venv/bin/python benchmarks/signing.py`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from pull import big_layer  # noqa: E402
from registry import running_registry, stored_image  # noqa: E402
from signkit import gnupg_home, make_key, signed_by, write_policy, write_registries_d  # noqa: E402

from buildlib.spec.refs import ImageRef  # noqa: E402
from buildlib.store import pulls  # noqa: E402
from buildlib.store.images import Store  # noqa: E402
from buildlib.store.signing import Signer  # noqa: E402
from buildlib.store.transport import Network  # noqa: E402
from buildlib.store.trust import Trust  # noqa: E402


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def push_pair(work: Path, host: str, name: str, size_mb: int, signer: Signer, network: Network) -> dict[str, float]:
    """Two images of the same size and different random bytes (so neither push finds the other's blobs
    already in the registry), one pushed plain and one signed: {'plain push': s, 'signed push': s}."""
    times = {}
    for repo, sign in (("plain", None), ("signed", signer)):
        source = Store(work / f"source-{repo}-{name}")
        ref = ImageRef.parse(f"example.com/{repo}-{name}:1")
        layers = [big_layer(source, max(1, size_mb * 1_000_000 // 4), f"l{i}") for i in range(4)]
        stored_image(source, ref, layers)
        dest = f"{host}/bench/{repo}-{name}:1"
        started = time.perf_counter()
        pulls.push(source, ref, dest, network=network, signer=sign)
        times[f"{repo} push"] = time.perf_counter() - started
    return times


def _pull_into(folder: Path, ref: ImageRef, network: Network) -> None:
    pulls.pull(Store(folder), ref, network=network)


def pull_round(work: Path, host: str, name: str, networks: dict[str, Network], turn: int) -> dict[str, float]:
    """One pull of each kind into a fresh store, the order rotated each round (the machine is shared)."""
    times = {}
    order = list(networks.items())
    for label, network in order[turn % len(order) :] + order[: turn % len(order)]:
        repo = "signed" if label.startswith("signed") else "plain"
        folder = work / f"pull-{label.replace(' ', '-')}"
        ref = ImageRef.parse(f"{host}/bench/{repo}-{name}:1")
        times[label] = timed(partial(_pull_into, folder, ref, network))
        shutil.rmtree(folder)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100, help="MB of the large image (default 100)")
    parser.add_argument("--runs", type=int, default=9, help="pulls of each kind (default 9)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        work = Path(tmp)
        key = make_key(work / "gnupg", "bench")
        with gnupg_home(work / "gnupg"), running_registry(work / "registry") as registry:
            registries_d = write_registries_d(work / "registries.d", registry.host, work / "signatures")
            any_policy = work / "any.json"
            any_policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
            signed_policy = write_policy(work / "signed.json", {f"{registry.host}/bench": [signed_by(key)]})
            plain = Network()
            networks = {
                "plain, no policy": plain,
                "plain, accept-anything policy": Network(trust=Trust(any_policy, registries_d)),
                "signed, signedBy policy": Network(trust=Trust(signed_policy, registries_d)),
            }
            signer = Signer(key.fingerprint)
            for name, size in (("small", 1), ("large", args.size)):
                pushes = push_pair(work, registry.host, name, size, signer, Network(trust=Trust(None, registries_d)))
                runs = [pull_round(work, registry.host, name, networks, turn) for turn in range(args.runs)]
                print(f"{name} image ({size} MB, 4 layers), medians of {args.runs}:")
                for label in networks:
                    figures = sorted(run[label] for run in runs)
                    spread = f"(min {figures[0]:.3f}, max {figures[-1]:.3f})"
                    print(f"  pull {label:32s} {statistics.median(figures):7.3f} s {spread}")
                for label, seconds in pushes.items():
                    print(f"  {label:37s} {seconds:7.3f} s (one run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
