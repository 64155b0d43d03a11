#!/usr/bin/env bash
# Claim 5's "improves with K" on arith_hard, where accuracy still moves (on arith every K hits the
# ceiling): VinePPO with K = 1 and 3 MC continuations per state, seeds 0-2, from `make tiny`'s
# arith_hard SFT model, 8 iterations with an evaluation after each, two jobs at a time with one
# thread each; K = 9 (the preset's) is results/compute_efficiency_hard's VinePPO runs (same
# settings). Run from the repository root:
#   bash results/mc_samples_hard/run.sh
#   python analysis/ablations.py runs/mc_samples_hard runs/compute_efficiency_hard --at-iteration 4 --out results/mc_samples_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # k seed
  .venv/bin/vineppo rl preset=tiny rl.algo=vineppo rl.vine_k=$1 rl.init=runs/table1/sft-arith_hard/final \
    task.name=arith_hard seed=$2 num_threads=1 rl.iterations=8 rl.eval_every=1 output_dir=runs/mc_samples_hard \
    run_name=vineppo_k$1-arith_hard-s$2 > runs/mc_samples_hard/vineppo_k$1-arith_hard-s$2.log 2>&1
}
export -f job
mkdir -p runs/mc_samples_hard
for s in ${SEEDS:-0 1 2}; do for k in 1 3; do echo "$k $s"; done; done | xargs -P 2 -L 1 bash -c 'job "$@"' _
