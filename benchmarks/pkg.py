"""Benchmark: `pkg build` of LinuxKit package folders (build.yml + Dockerfile) with buildah.

Builds our busybox component, pushes it to a docker-registry started here on 127.0.0.1 as the packages'
FROM image, then times, side by side in one run:
- one small package (a COPY, an ARG and a RUN step): `pkg build` into a clean store (cold: the base is
  pulled from the loopback registry, buildah runs), and again (no change: nothing runs);
- a spec naming several such packages as onboot containers, `build -f tar` with `-j 1` and `-j 2`, each
  cold (clean store) and with no change.
Medians of `--runs`. Run: `.venv/bin/python benchmarks/pkg.py [--runs 3] [--packages 4]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from registry import running_registry  # noqa: E402

from buildlib.debian import archive, recipes  # noqa: E402
from buildlib.debian import builds as component_builds  # noqa: E402
from buildlib.store import pulls  # noqa: E402
from buildlib.store.images import Store  # noqa: E402

DOCKERFILE = """\
FROM {base}
ARG GREETING=unset
COPY hello.txt /etc/hello.txt
RUN echo "$GREETING" > /etc/greeting
"""


def distrokit(cache: Path, *args: str) -> float:
    env = dict(os.environ, DISTROKIT_CACHE=str(cache), PYTHONPATH=str(REPO))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "buildlib.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"distrokit {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds


def fresh_store(work: Path, name: str, debs: Path) -> Path:
    cache = work / name
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (cache / "debs").symlink_to(debs, target_is_directory=True)
    return cache


def make_packages(work: Path, base: str, count: int) -> list[Path]:
    folders = []
    for number in range(count):
        folder = work / "packages" / f"pkg{number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "build.yml").write_text(f"image: pkg{number}\norg: bench\nbuildArgs:\n  - GREETING=hello-{number}\n")
        (folder / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        (folder / "hello.txt").write_text(f"hello {number}\n")
        folders.append(folder)
    return folders


def push_base(work: Path, host: str, debs: Path) -> str:
    store = Store(fresh_store(work, "components", debs))
    recipe = recipes.load_recipe(REPO / "components" / "busybox")
    component_builds.ensure(store, recipe, archive.pinned_packages(store.root, recipe))
    name = f"{host}/bench/busybox:base"
    pulls.push(store, recipe.ref, name)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--packages", type=int, default=4)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="distrokit-pkg-bench-"))
    debs = work / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    figures: dict[str, list[float]] = {}
    with running_registry(work / "registry") as registry:
        base = push_base(work, registry.host, debs)
        folders = make_packages(work, base, args.packages)
        spec = work / "spec.yml"
        spec.write_text(
            "onboot:\n" + "".join(f'  - name: pkg{n}\n    image: "@pkg:{folder}"\n' for n, folder in enumerate(folders))
        )
        for run in range(args.runs):
            cache = fresh_store(work, f"one-{run}", debs)
            figures.setdefault("pkg build, one package, cold", []).append(
                distrokit(cache, "pkg", "build", str(folders[0]))
            )
            figures.setdefault("pkg build, one package, no change", []).append(
                distrokit(cache, "pkg", "build", str(folders[0]))
            )
            for jobs in ("1", "2"):
                cache = fresh_store(work, f"spec-{jobs}-{run}", debs)
                out = work / f"out-{jobs}.tar"
                build = ("build", "-q", "-j", jobs, "-f", "tar", "-o", str(out), str(spec))
                figures.setdefault(f"build -j {jobs}, {args.packages} packages, cold", []).append(
                    distrokit(cache, *build)
                )
                figures.setdefault(f"build -j {jobs}, {args.packages} packages, no change", []).append(
                    distrokit(cache, *build)
                )
    width = max(len(name) for name in figures)
    print(f"medians of {args.runs} (seconds), one run, side by side:")
    for name, values in figures.items():
        print(f"  {name:<{width}}  {statistics.median(values):7.2f}   ({', '.join(f'{v:.2f}' for v in values)})")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
