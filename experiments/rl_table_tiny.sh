#!/usr/bin/env bash
# All six methods on arith from the tiny SFT checkpoint, same budget, 3 seeds, then the table.
# This produced results/rl_tiny/ (sweep=table1 of experiments/launch.py supersedes it):
#   make tiny && bash experiments/rl_table_tiny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure_env.sh
ITERS=${ITERS:-15}
SEEDS=${SEEDS:-"0 1 2"}
OUT=${OUT:-runs/rl_tiny}
INIT=${INIT:-runs/sft-arith-s0/final}
for seed in $SEEDS; do
  for algo in restem dpo_plus ppo vineppo grpo rloo; do
    .venv/bin/vineppo rl rl.algo="$algo" rl.init="$INIT" seed="$seed" rl.iterations="$ITERS" \
      rl.eval_every="$ITERS" output_dir="$OUT" "$@"
  done
done
.venv/bin/python analysis/rl_table.py "$OUT" --out results/rl_tiny --sft-eval runs/sft-arith-s0/eval/test.json
