"""Every output format is the same bytes from a clean store, another output folder, another umask,
time zone and locale, built later (the shared build is the other half)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, Built, new_cache

TESTS = Path(__file__).resolve().parents[1]


def digests(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name.startswith("media")
    }


@pytest.mark.slow
def test_every_format_is_bit_for_bit_reproducible(
    media_build: tuple[Built, Built], debs_dir: Path, tmp_path: Path
) -> None:
    cache = new_cache(tmp_path / "clean" / "cache", debs_dir)
    out = tmp_path / "a" / "much" / "longer" / "output folder"
    program = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
        "from conftest import build_media; build_media(Path(sys.argv[2]), Path(sys.argv[3]))"
    )
    env = {**os.environ, "TZ": "Pacific/Chatham", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    env.pop("SOURCE_DATE_EPOCH", None)
    command = f"umask 077 && exec {sys.executable} -c '{program}' {TESTS} {cache} '{out}'"
    done = subprocess.run(["sh", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    first, second = digests(media_build[0].out_dir), digests(out)
    assert len(first) >= 20 and first.keys() == second.keys()
    assert {name for name in first if first[name] != second[name]} == set()
