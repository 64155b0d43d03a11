#!/usr/bin/env bash
# Claim 5's "robust to the sampling temperature" on arith_hard: PPO and VinePPO sampling rollouts
# (and VinePPO's MC continuations) at T = 0.8 and 1.0, seeds 0-2, from `make tiny`'s arith_hard SFT
# model, 8 iterations with an evaluation after each, two jobs at a time with one thread each;
# T = 0.6 (the preset's) is results/compute_efficiency_hard's runs (same settings).
# Run from the repository root:
#   bash results/temperature_hard/run.sh
#   python analysis/ablations.py runs/temperature_hard runs/compute_efficiency_hard --at-iteration 4 --out results/temperature_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # algo temperature seed
  .venv/bin/vineppo rl preset=tiny rl.algo=$1 rl.temperature=$2 rl.init=runs/table1/sft-arith_hard/final \
    task.name=arith_hard seed=$3 num_threads=1 rl.iterations=8 rl.eval_every=1 output_dir=runs/temperature_hard \
    run_name=$1_t$2-arith_hard-s$3 > runs/temperature_hard/$1_t$2-arith_hard-s$3.log 2>&1
}
export -f job
mkdir -p runs/temperature_hard
for s in ${SEEDS:-0 1 2}; do for t in 0.8 1.0; do for a in ppo vineppo; do echo "$a $t $s"; done; done; done |
  xargs -P 2 -L 1 bash -c 'job "$@"' _
