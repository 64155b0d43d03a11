#!/usr/bin/env bash
# Do the RL-free baselines catch up with more budget? In the tiny table (5 iterations) RestEM and DPO+
# gain +0.4 / +1.1 points on arith_hard against +38 to +40 for the on-policy methods, after 10 and 16
# gradient steps against 40: each iteration keeps only the distinct correct responses (RestEM) or
# correct/incorrect pairs (DPO+), one or two mini-batches. Here both run 25 iterations (RestEM ~50,
# DPO+ ~80 gradient steps, past the on-policy methods' 40) from the table's arith_hard SFT model,
# with an evaluation after each, seeds $SEEDS (default 0-2), everything else as in the table; PPO
# and VinePPO run 8 iterations the same way, from the same commit, so that wall-clock compares too.
# Run from the repository root (`make tiny` first):
#   bash results/rl_free_hard/run.sh
#   python analysis/compute_efficiency.py runs/rl_free_hard --baseline restem --tolerance 0.01 --out results/rl_free_hard
#   python analysis/compute_efficiency.py runs/rl_free_hard --baseline dpo_plus --tolerance 0.01 --out results/rl_free_hard/dpo_plus
#   python analysis/shared_errors.py runs/rl_free_hard --out results/rl_free_hard/shared_errors
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # algo seed iterations
  .venv/bin/vineppo rl preset=tiny rl.algo=$1 rl.init=runs/table1/sft-arith_hard/final task.name=arith_hard \
    seed=$2 num_threads=1 rl.iterations=$3 rl.eval_every=1 output_dir=runs/rl_free_hard \
    run_name=$1-arith_hard-s$2 > runs/rl_free_hard/$1-arith_hard-s$2.log 2>&1
}
export -f job
mkdir -p runs/rl_free_hard
for s in ${SEEDS:-0 1 2}; do
  for a in ${ALGOS:-restem dpo_plus ppo vineppo}; do
    case $a in restem|dpo_plus) n=${ITERATIONS:-25};; *) n=${ITERATIONS_ON_POLICY:-8};; esac
    echo "$a $s $n"
  done
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
