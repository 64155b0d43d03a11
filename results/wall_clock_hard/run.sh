#!/usr/bin/env bash
# Claim 2's wall-clock half on arith_hard, timed with nothing else on the machine: PPO, VinePPO at
# the preset's K = 9 and VinePPO at K = 3 (the paper's own K ablation; K sets how many MC rollouts
# an iteration pays for), from `make tiny`'s arith_hard SFT model, 8 iterations with an evaluation
# after each (left out of the wall-clock), seeds $SEEDS (default 0-2), two jobs at a time with one
# thread each, everything else as in the table. Run from the repository root (`make tiny` first):
#   bash results/wall_clock_hard/run.sh    (then SEEDS="3 4 5" bash results/wall_clock_hard/run.sh)
#   python analysis/compute_efficiency.py runs/wall_clock_hard --method vineppo_k9 --out results/wall_clock_hard
#   python analysis/compute_efficiency.py runs/wall_clock_hard --method vineppo_k3 --out results/wall_clock_hard/k3
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # name seed overrides...
  name=$1 seed=$2; shift 2
  .venv/bin/vineppo rl preset=tiny rl.init=runs/table1/sft-arith_hard/final task.name=arith_hard seed=$seed \
    num_threads=1 rl.iterations=8 rl.eval_every=1 output_dir=runs/wall_clock_hard "$@" \
    run_name=$name-arith_hard-s$seed > runs/wall_clock_hard/$name-arith_hard-s$seed.log 2>&1
}
export -f job
mkdir -p runs/wall_clock_hard
for s in ${SEEDS:-0 1 2}; do
  echo "ppo $s rl.algo=ppo"
  echo "vineppo_k9 $s rl.algo=vineppo rl.vine_k=9"
  echo "vineppo_k3 $s rl.algo=vineppo rl.vine_k=3"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
