#!/usr/bin/env bash
# The main job: set up, build specs/minimal.yml into out/, and boot it in QEMU with the console here.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/distrokit build specs/minimal.yml --dir out
exec .venv/bin/distrokit run out/minimal "$@"
