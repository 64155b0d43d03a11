#!/usr/bin/env bash
# The main table's PPO rows again with PPO's gradients clipped per model (rl.grad_clip_scope=per_model,
# the default since grad_clip_hard/; the table's rows used the joint clip): PPO on arith and
# arith_hard from `make tiny`'s SFT models, the table's settings (5 iterations, evaluated at the end,
# seeds 0-2), one job at a time on one thread. From the repository root (`make tiny` first):
#   bash results/table1_ppo_per_model/run.sh
#   python analysis/rl_table.py results/table1_ppo_per_model/runs --out results/table1_ppo_per_model
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
mkdir -p runs/table1_ppo_per_model
for task in arith arith_hard; do
  init=runs/table1/sft-$task/final
  [ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
  for s in ${SEEDS:-0 1 2}; do
    .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=$task seed=$s num_threads=1 rl.algo=ppo \
      rl.iterations=5 rl.eval_every=5 rl.grad_clip_scope=per_model output_dir=runs/table1_ppo_per_model \
      run_name=ppo-$task-s$s > runs/table1_ppo_per_model/ppo-$task-s$s.log 2>&1
  done
done
mkdir -p results/table1_ppo_per_model/runs
for d in runs/table1_ppo_per_model/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/table1_ppo_per_model/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/table1_ppo_per_model/runs/$(basename "$d")/"
done
