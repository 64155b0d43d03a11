#!/usr/bin/env bash
# temperature_hard/ again for PPO clipped per model (the paper's actor and critic; grad_clip_hard/):
# PPO sampling rollouts at T = 0.8 and 1.0, seeds $SEEDS (default 0-2), from `make tiny`'s arith_hard
# SFT model, 8 iterations with an evaluation after each, two jobs at a time with one thread each.
# VinePPO's runs at T = 0.8 / 1.0 are temperature_hard/'s (VinePPO has no value network, so the clip
# fix does not touch it); T = 0.6 (the preset's) is wall_clock_per_model/'s PPO and VinePPO K = 9.
# From the repository root (`make tiny` first):
#   bash results/temperature_per_model/run.sh
#   python analysis/ablations.py results/temperature_per_model/runs results/temperature_hard/runs/vineppo_* \
#     results/wall_clock_per_model/runs/ppo-* results/wall_clock_per_model/runs/vineppo_k9-* \
#     --at-iteration 4 --out results/temperature_per_model
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # temperature seed
  .venv/bin/vineppo rl preset=tiny rl.algo=ppo rl.temperature=$1 rl.init=$init task.name=arith_hard seed=$2 \
    num_threads=1 rl.iterations=8 rl.eval_every=1 rl.grad_clip_scope=per_model output_dir=runs/temperature_per_model \
    run_name=ppo_t$1-arith_hard-s$2 > runs/temperature_per_model/ppo_t$1-arith_hard-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/temperature_per_model
for s in ${SEEDS:-0 1 2}; do for t in 0.8 1.0; do echo "$t $s"; done; done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/temperature_per_model/runs
for d in runs/temperature_per_model/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/temperature_per_model/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/temperature_per_model/runs/$(basename "$d")/"
done
