#!/usr/bin/env bash
# credit_blame_hard/ again with PPO clipped per model (the paper's actor and critic; grad_clip_hard/):
# which step does PPO's value network blame on arith_hard, at the shared 3e-5 and at 3e-4 / 3e-3?
# First the PPO runs of wall_clock_per_model/ (3e-5) and critic_lr_per_model/ (3e-4, 3e-3) again,
# seeds $SEEDS (default 0-5), keeping the iteration-4 and iteration-8 checkpoints (same seeds and
# config, so the same numbers: tests/analysis/test_reference_results.py compares them); then
# analysis/credit_assignment.py blame at both checkpoints, 6 seeds pooled, 500 held-out problems,
# one sampled response each, K = 9. One thread per job, two jobs at a time. From the repository
# root (`make tiny` first):
#   bash results/credit_blame_per_model/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
runs=runs/credit_blame_per_model
train() {  # rate seed
  local name=ppo_vlr$1; [ "$1" = null ] && name=ppo
  .venv/bin/vineppo rl preset=tiny rl.algo=ppo rl.init=$init task.name=arith_hard seed=$2 num_threads=1 \
    rl.iterations=8 rl.eval_every=1 rl.save_every=4 rl.keep_checkpoints=0 rl.value_learning_rate=$1 \
    rl.grad_clip_scope=per_model output_dir=$runs run_name=$name-arith_hard-s$2 > $runs/$name-arith_hard-s$2.log 2>&1
}
blame() {  # rate checkpoint
  local name=ppo_vlr$1 folders=(); [ "$1" = null ] && name=ppo
  for s in ${SEEDS:-0 1 2 3 4 5}; do folders+=("$runs/$name-arith_hard-s$s"); done
  .venv/bin/python analysis/credit_assignment.py blame "${folders[@]}" --checkpoint "$2" --problems 500 \
    --out "results/credit_blame_per_model/it$2/vlr$1" > "$runs/blame-vlr$1-it$2.log" 2>&1
}
export -f train blame
export init runs
mkdir -p $runs
for s in ${SEEDS:-0 1 2 3 4 5}; do for v in null 3e-4 3e-3; do echo "train $v $s"; done; done |
  xargs -P 2 -L 1 bash -c '"$@"' _
for c in 4 8; do for v in null 3e-4 3e-3; do echo "blame $v $c"; done; done | xargs -P 2 -L 1 bash -c '"$@"' _
mkdir -p results/credit_blame_per_model/runs
for d in $runs/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/credit_blame_per_model/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/credit_blame_per_model/runs/$(basename "$d")/"
done
