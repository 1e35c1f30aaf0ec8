"""The same inputs give bit-identical outputs, from clean stores."""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import SPECS, Built, build, new_cache


def digests(out_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out_dir.iterdir())}


def test_clean_builds_are_identical(minimal_build: Built, tmp_path: Path, debs_dir: Path) -> None:
    clean = build(SPECS / "minimal.yml", new_cache(tmp_path / "cache", debs_dir), tmp_path / "out")
    assert set(clean.report.executed) >= {"component:kernel", "component:init", "part:minimal/kernel"}
    first, second = digests(minimal_build.out_dir), digests(clean.out_dir)
    assert first.keys() == {"minimal-kernel", "minimal-initrd.img", "minimal-cmdline"}
    assert first == second
