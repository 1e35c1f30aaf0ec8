#!/usr/bin/env bash
# The whole test suite: set up, then run every test (real skopeo, registry and QEMU boots).
#
# Two pytest-xdist workers (one a core, at most two: a QEMU under TCG keeps one core busy), so boots and
# other slow tests run side by side. `--dist load` hands tests out a few at a time as workers free up
# (tests/conftest.py puts the modules with boots first; session builds are made once per run). No test
# relies on `xdist_group`: with pytest 9.2 and xdist 3.8 the mark is silently ignored. Extra arguments
# go to pytest: `bash scripts/test.sh -k foo`, or `-n 0` for one process (a later -n wins).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cores="$(nproc 2>/dev/null || echo 1)"
workers="${DISTROKIT_TEST_WORKERS:-$(( cores < 2 ? cores : 2 ))}"
exec .venv/bin/python -m pytest -ra -n "$workers" --dist load "$@"
