#!/usr/bin/env bash
# Which step does PPO's value network blame once it has learned? credit_blame/'s measurement
# (analysis/credit_assignment.py blame, iteration-2 checkpoint, 500 held-out problems, K = 9) on the
# three PPO runs of value_quality_vlr/ (value network at the shared 3e-5, 3e-4, 3e-3), two at a time
# on one thread each. Needs those runs: `bash results/value_quality_vlr/run.sh` first. From the
# repository root:
#   bash results/credit_blame_vlr/run.sh            (CHECKPOINT=4 for the iteration-4 checkpoints)
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
ckpt=${CHECKPOINT:-2}
blame() {
  local run=runs/value_quality_vlr/ppo_vlr$1-arith-s0
  [ -d "$run" ] || { echo "missing $run: run results/value_quality_vlr/run.sh first" >&2; return 1; }
  .venv/bin/python analysis/credit_assignment.py blame "$run" --checkpoint "$ckpt" --problems 500 \
    --out results/credit_blame_vlr/it$ckpt/vlr$1 > "$run.blame$ckpt.log" 2>&1
}
rates=(${RATES:-null 3e-4 3e-3})
for ((i = 0; i < ${#rates[@]}; i += 2)); do
  blame "${rates[i]}" &
  [ -n "${rates[i+1]:-}" ] && blame "${rates[i+1]}" &
  wait
done
