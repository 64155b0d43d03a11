#!/usr/bin/env bash
# Does clipping PPO's policy and value gradients together hold its policy back? Until grad_clip_hard/
# the updater clipped the norm of the policy's and the value network's gradients jointly (as TRL's
# PPO does); the value loss's gradient (norm 1.5-4 on arith_hard) then cut every policy step to
# 25-50% of itself, while VinePPO's, GRPO's and RLOO's policy gradients (norm 0.1-0.7) were never
# clipped. The paper's code trains actor and critic with separate optimizers, each clipped:
# rl.grad_clip_scope=per_model, now the default. PPO on arith_hard from `make tiny`'s SFT model
# clipped per model, 8 iterations with an evaluation after each, everything else as in
# wall_clock_hard/ (whose PPO runs are the joint clip), seeds $SEEDS (default 0-5), two jobs at a
# time with one thread each. From the repository root (`make tiny` first):
#   bash results/grad_clip_hard/run.sh
#   python analysis/compute_efficiency.py results/grad_clip_hard/runs results/wall_clock_hard/runs/vineppo_k9-* \
#     --out results/grad_clip_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # seed
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$1 num_threads=1 rl.algo=ppo \
    rl.iterations=8 rl.eval_every=1 rl.grad_clip_scope=per_model output_dir=runs/grad_clip_hard \
    run_name=ppo-arith_hard-s$1 > runs/grad_clip_hard/ppo-arith_hard-s$1.log 2>&1
}
export -f job
export init
mkdir -p runs/grad_clip_hard
for s in ${SEEDS:-0 1 2 3 4 5}; do echo "$s"; done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/grad_clip_hard/runs
for d in runs/grad_clip_hard/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/grad_clip_hard/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/grad_clip_hard/runs/$(basename "$d")/"
done
