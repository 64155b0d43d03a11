#!/usr/bin/env bash
# Which step does PPO's value network blame on arith_hard, at the paper's single learning rate and
# once it has learned (credit_blame/'s measurement, beyond the paper)? analysis/credit_assignment.py
# blame on the PPO runs of critic_lr_hard/ (value network at the shared 3e-5, 3e-4, 3e-3; 6 seeds
# pooled, their spread kept) at the iteration-4 and iteration-8 checkpoints, 500 held-out problems,
# one sampled response each, K = 9; one thread per job, two jobs at a time. Needs those runs:
# `bash results/critic_lr_hard/run.sh` and `SEEDS="3 4 5" bash results/critic_lr_hard/run.sh` first.
# From the repository root:
#   bash results/credit_blame_hard/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
mkdir -p runs/credit_blame_hard
blame() {  # rate checkpoint
  local name=ppo_vlr$1 runs=()
  [ "$1" = null ] && name=ppo
  for s in ${SEEDS:-0 1 2 3 4 5}; do
    runs+=("runs/critic_lr_hard/$name-arith_hard-s$s")
    [ -d "${runs[-1]}" ] || { echo "missing ${runs[-1]}: run results/critic_lr_hard/run.sh first" >&2; return 1; }
  done
  .venv/bin/python analysis/credit_assignment.py blame "${runs[@]}" --checkpoint "$2" --problems 500 \
    --out "results/credit_blame_hard/it$2/vlr$1" > "runs/credit_blame_hard/vlr$1-it$2.log" 2>&1
}
jobs=()
for c in ${CHECKPOINTS:-4 8}; do for v in ${RATES:-null 3e-4 3e-3}; do jobs+=("$v $c"); done; done
for ((i = 0; i < ${#jobs[@]}; i += 2)); do
  blame ${jobs[i]} &
  [ -n "${jobs[i+1]:-}" ] && blame ${jobs[i+1]} &
  wait
done
