#!/usr/bin/env bash
# VinePPO's MC values on the measure PPO's critic gets in critic_lr_hard/: how much of the returns'
# variance they explain, iteration by iteration (`value/explained_variance`, which VinePPO runs
# now log too). The K = 9 VinePPO runs of wall_clock_hard/ again (arith_hard, `make tiny`'s SFT
# model, 8 iterations with an evaluation after each, seeds 0-2, two jobs at a time with one thread
# each): the same numbers, now with the value statistics. Run from the repository root:
#   bash results/value_fit_hard/run.sh
#   python analysis/critic.py runs/critic_lr_hard runs/value_fit_hard --out results/critic_lr_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # seed
  .venv/bin/vineppo rl preset=tiny rl.init=runs/table1/sft-arith_hard/final task.name=arith_hard seed=$1 \
    num_threads=1 rl.algo=vineppo rl.vine_k=9 rl.iterations=8 rl.eval_every=1 output_dir=runs/value_fit_hard \
    run_name=vineppo_k9-arith_hard-s$1 > runs/value_fit_hard/vineppo_k9-arith_hard-s$1.log 2>&1
}
export -f job
mkdir -p runs/value_fit_hard
printf '%s\n' ${SEEDS:-0 1 2} | xargs -P 2 -L 1 bash -c 'job "$@"' _
