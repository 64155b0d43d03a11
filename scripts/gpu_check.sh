#!/usr/bin/env bash
# Every GPU check in one run (see scripts/gpu_check.py): bash scripts/gpu_check.sh [OUT_DIR]
# On a GPU machine: under 10 minutes, outputs in OUT_DIR (default gpu_check/): summary.json and one log
# per check. GPU_CHECK_SCALE=tiny runs the CPU-sized version (tests/test_gpu_check.py).
# Without a package index there: .venv/bin/python scripts/gpu_wheels.py here, and bring .whl/ along.
# Python: $PYTHON, else .venv/bin/python where it exists, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" scripts/gpu_check.py "$@"
