#!/usr/bin/env bash
# The probes in results/probes/, as run on 2026-11-28 (commit 2039a8f + the rl.whiten_advantages
# option; then with output_dir=/tmp/probes): PPO on arith in fp32 at 5 iterations (the table's
# budget) and GRPO / RLOO without batch whitening at vs_trl.py's 10 iterations in fp32, seeds 0-2,
# two jobs at a time with one thread each, from the table's arith SFT checkpoint (`make tiny`).
# Run from the repository root: bash results/probes/run_probes.sh  (outputs in runs/probes/)
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
job() {  # name algo seed extra...
  name=$1; algo=$2; seed=$3; shift 3
  .venv/bin/vineppo rl preset=tiny rl.algo=$algo rl.init=runs/table1/sft-arith/final task.name=arith \
    seed=$seed num_threads=1 rl.autocast=null output_dir=runs/probes run_name=$name "$@" > runs/probes/$name.log 2>&1
}
export -f job
mkdir -p runs/probes
{
for s in 0 1 2; do echo "ppo32-s$s ppo $s rl.iterations=5 rl.eval_every=5"; done
for a in grpo rloo; do for s in 0 1 2; do
  echo "$a-nowhiten-s$s $a $s rl.iterations=10 rl.eval_every=10 rl.save_every=10 rl.whiten_advantages=false"
done; done
} | xargs -P 2 -L 1 bash -c 'job "$@"' _
