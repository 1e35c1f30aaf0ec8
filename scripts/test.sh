#!/usr/bin/env bash
# The whole test suite: set up, then run every test (real skopeo, registry and QEMU boots).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -ra "$@"
