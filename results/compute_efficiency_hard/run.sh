#!/usr/bin/env bash
# Claim 2 (VinePPO reaches PPO's peak in fewer steps / less wall-clock) on arith_hard, where the
# tiny table's on-policy methods still move after 5 iterations (on arith both hit the ceiling in 2):
# PPO and VinePPO from the table's arith_hard SFT model (`make tiny` first), 8 iterations with an
# evaluation after each, seeds $SEEDS (default 0-2), two jobs at a time with one thread each (as the sweeps run).
# Run from the repository root:
#   bash results/compute_efficiency_hard/run.sh    (then SEEDS="3 4 5" bash ... for three more)
#   python analysis/compute_efficiency.py runs/compute_efficiency_hard --out results/compute_efficiency_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny rl.algo=$1 rl.init=runs/table1/sft-arith_hard/final task.name=arith_hard \
    seed=$2 num_threads=1 rl.iterations=8 rl.eval_every=1 output_dir=runs/compute_efficiency_hard \
    run_name=$1-arith_hard-s$2 > runs/compute_efficiency_hard/$1-arith_hard-s$2.log 2>&1
}
export -f job
mkdir -p runs/compute_efficiency_hard
for s in ${SEEDS:-0 1 2}; do for a in ppo vineppo; do echo "$a $s"; done; done | xargs -P 2 -L 1 bash -c 'job "$@"' _
