#!/usr/bin/env bash
# value_clip_hard/ again with PPO clipped per model (the paper's actor and critic; grad_clip_hard/):
# PPO's value network at 3e-4 and 3e-3 without the value-loss clip (rl.value_clip=null), arith_hard
# from `make tiny`'s SFT model, 8 iterations with an evaluation after each, seeds $SEEDS (default
# 0-5), two jobs at a time with one thread each; the clipped arms are critic_lr_per_model/'s runs
# and VinePPO is wall_clock_per_model/'s (same seeds and prompts). From the repository root:
#   bash results/value_clip_per_model/run.sh
#   python analysis/critic.py results/value_clip_per_model/runs results/critic_lr_per_model/runs --out results/value_clip_per_model
#   python analysis/compute_efficiency.py results/value_clip_per_model/runs results/wall_clock_per_model/runs/vineppo_k9-* \
#     --baseline ppo_vlr0.0003_noclip --out results/value_clip_per_model/vs_vineppo_vlr0.0003   (and 0.003)
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # name seed overrides...
  name=$1 seed=$2; shift 2
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$seed num_threads=1 rl.algo=ppo \
    rl.iterations=8 rl.eval_every=1 rl.grad_clip_scope=per_model rl.value_clip=null \
    output_dir=runs/value_clip_per_model "$@" run_name=$name-arith_hard-s$seed \
    > runs/value_clip_per_model/$name-arith_hard-s$seed.log 2>&1
}
export -f job
export init
mkdir -p runs/value_clip_per_model
for s in ${SEEDS:-0 1 2 3 4 5}; do
  echo "ppo_vlr3e-4_noclip $s rl.value_learning_rate=3e-4"
  echo "ppo_vlr3e-3_noclip $s rl.value_learning_rate=3e-3"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/value_clip_per_model/runs
for d in runs/value_clip_per_model/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/value_clip_per_model/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/value_clip_per_model/runs/$(basename "$d")/"
done
