#!/usr/bin/env bash
# The whole test suite: set up, then run every test (real skopeo, registry and QEMU boots).
#
# Two pytest-xdist workers (one a core, at most two: a QEMU under TCG keeps one core busy), so boots and
# other slow tests run side by side (tests/conftest.py hands out the modules with boots first; session
# builds are made once per run). `--dist loadgroup` keeps at most ~3 tests queued on a worker and gives
# more as it frees up; `--dist load` queues a quarter of the suite up front, round robin, and a worker
# that drew the slow boots ends alone (measured: one worker idle for minutes). No test relies on
# `xdist_group` (pytest 9.2 with xdist 3.8 ignores the mark). Extra arguments go to pytest:
# `bash scripts/test.sh -k foo`, or `-n 0` for one process (a later -n wins).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cores="$(nproc 2>/dev/null || echo 1)"
workers="${DISTROKIT_TEST_WORKERS:-$(( cores < 2 ? cores : 2 ))}"
exec .venv/bin/python -m pytest -ra -n "$workers" --dist loadgroup "$@"
