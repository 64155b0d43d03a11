#!/usr/bin/env bash
# Create (or refresh) the pinned environment in .venv/ when it is missing or pyproject.toml changed.
# torch is installed first, pinned, so that pip takes the CPU build instead of pulling CUDA wheels.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.vineppo-stamp"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[ensure_env] creating pinned environment in $venv" >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet "setuptools==84.2.1"
DS_BUILD_OPS=0 "$venv/bin/python" -m pip install --quiet --no-build-isolation "deepspeed==0.19.8"
"$venv/bin/python" -m pip install --quiet -e "$root[dev,trl,deepspeed]"
echo "$want" > "$stamp"
echo "[ensure_env] ready" >&2
