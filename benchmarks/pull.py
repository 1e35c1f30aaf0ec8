"""Benchmark: pulling a ~300 MB image from a loopback registry, distrokit against a bare `skopeo copy`.

Builds an image of random-content gzip layers, pushes it to a docker-registry started here on 127.0.0.1,
then times, in the same run and alternating, `distrokit`'s pull (our retry loop, verification, store)
and a bare `skopeo copy docker://… oci:…` of the same image, each into a fresh folder. Then pulls once
more through the fault proxy cutting every other blob transfer halfway, and reports the bytes that
crossed the proxy over the image size. Prints the figures; run: `.venv/bin/python benchmarks/pull.py`.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from faultproxy import Fault, FaultProxy, Plan, Script  # noqa: E402
from registry import Registry, running_registry, stored_image  # noqa: E402

from buildlib.spec.refs import ImageRef  # noqa: E402
from buildlib.store import pulls, transport  # noqa: E402
from buildlib.store.images import MEDIA_LAYER_GZIP, Layer, Store  # noqa: E402
from buildlib.store.transport import Network, RetryPolicy  # noqa: E402


def big_layer(store: Store, size: int, name: str) -> Layer:
    """A gzip (level 1) layer holding one file of `size` random bytes, written straight into the store."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = size, 1000
        archive.addfile(info, io.BytesIO(os.urandom(size)))
    data = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=1) as out:
        out.write(data)
    blob = packed.getvalue()
    return Layer(store.put_blob(blob), MEDIA_LAYER_GZIP, len(blob), "sha256:" + hashlib.sha256(data).hexdigest())


def make_image(work: Path, registry: Registry, total_mb: int, count: int) -> tuple[ImageRef, int]:
    source = Store(work / "source")
    layers = [big_layer(source, total_mb * 1_000_000 // count, f"layer{i}") for i in range(count)]
    ref = ImageRef.parse(f"{registry.host}/bench/big:v1")
    stored_image(source, ref, layers)
    pulls.push(source, ref, str(ref), network=Network())
    shutil.rmtree(source.root)
    return ref, sum(layer.size for layer in layers)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (skopeo), user and system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(pull: Callable[[], object], folder: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one pull into `folder` (then removed)."""
    cpu, started = cpu_seconds(), time.monotonic()
    pull()
    elapsed, used = time.monotonic() - started, cpu_seconds() - cpu
    shutil.rmtree(folder)
    return elapsed, used


def time_distrokit(ref: ImageRef, folder: Path) -> tuple[float, float]:
    return measured(lambda: pulls.pull(Store(folder), ref, network=Network()), folder)


def time_skopeo(ref: ImageRef, folder: Path) -> tuple[float, float]:
    command = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}", f"oci:{folder}:image"]
    return measured(lambda: subprocess.run(command, check=True), folder)


def faulty_pull(ref: ImageRef, registry: Registry, folder: Path, image_size: int) -> tuple[float, int, float]:
    """Bytes over the proxy / image size, the retries and seconds, with every other blob transfer cut halfway."""
    plan = Plan([Script(r"/blobs/sha256:", [Fault("cut", at=0.5), None], repeat=True)])
    proxy = FaultProxy(registry.port, plan)
    retries = 0

    def count(event: transport.Event) -> None:
        nonlocal retries
        retries += event.kind is transport.EventKind.RETRY

    try:
        started = time.monotonic()
        network = Network(retry=RetryPolicy(attempts=30, backoff=0.2, max_backoff=2))
        through_proxy = ImageRef.parse(f"{proxy.host}/{ref.path}:{ref.tag}")
        pulls.pull(Store(folder), through_proxy, network=network, listener=count)
        elapsed = time.monotonic() - started
        crossed = proxy.blob_bytes()
    finally:
        proxy.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return crossed / image_size, retries, elapsed


def report(name: str, runs: list[tuple[float, float]]) -> None:
    walls = ", ".join(f"{t:.2f}" for t, _ in runs)
    median_wall = statistics.median(t for t, _ in runs)
    median_cpu = statistics.median(c for _, c in runs)
    print(f"{name:17} median {median_wall:.2f} s wall ({walls}), {median_cpu:.2f} s CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--workdir",
        default="/dev/shm" if os.path.isdir("/dev/shm") else None,
        help="where (default: memory, so the disk's writeback noise stays out of the figures)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="distrokit-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        with running_registry(work / "registry") as registry:
            ref, size = make_image(work, registry, args.size_mb, args.layers)
            print(f"image: {size / 1e6:.0f} MB in {args.layers} layers")
            ours: list[tuple[float, float]] = []
            bare: list[tuple[float, float]] = []
            for round_ in range(args.rounds):  # alternate who goes first; flush dirty pages before each
                runs = [(bare, time_skopeo, "skopeo"), (ours, time_distrokit, "distrokit")]
                for times, timer, name in runs if round_ % 2 == 0 else runs[::-1]:
                    os.sync()
                    times.append(timer(ref, work / f"{name}-{round_}"))
            report("bare skopeo copy", bare)
            report("distrokit pull", ours)
            wall = statistics.median(t for t, _ in ours) / statistics.median(t for t, _ in bare)
            cpu = statistics.median(c for _, c in ours) / statistics.median(c for _, c in bare)
            print(f"ratio distrokit / skopeo (no faults): wall-clock {wall:.3f} (medians), CPU {cpu:.3f} (medians)")
            ratio, retries, seconds = faulty_pull(ref, registry, work / "faulty", size)
            print(f"every other blob transfer cut halfway: bytes over the proxy / image size = {ratio:.3f} ")
            print(f"  ({retries} retries, {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
