#!/usr/bin/env bash
# The whole test suite: set up, then run every test (real skopeo, registry and QEMU boots).
#
# Two pytest-xdist workers (one a core, at most two: a QEMU under TCG keeps one core busy), so boots and
# other slow tests run side by side. `--dist loadgroup` hands tests out one by one as workers free up, and
# keeps the tests marked `xdist_group` (those sharing a store they clean) in one worker. Extra arguments
# go to pytest: `bash scripts/test.sh -k foo`, or `-n 0` for one process (a later -n wins).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cores="$(nproc 2>/dev/null || echo 1)"
workers="${DISTROKIT_TEST_WORKERS:-$(( cores < 2 ? cores : 2 ))}"
exec .venv/bin/python -m pytest -ra -n "$workers" --dist loadgroup "$@"
