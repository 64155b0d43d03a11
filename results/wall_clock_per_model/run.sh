#!/usr/bin/env bash
# Claim 2's wall-clock half on arith_hard again, now that PPO clips its policy and value gradients
# each on its own (rl.grad_clip_scope=per_model, the paper's actor and critic; grad_clip_hard/):
# PPO, VinePPO at the preset's K = 9 and at K = 3, timed in one session so that the three share
# the machine's conditions (wall_clock_hard/ is the same design with the joint clip; grad_clip_hard/
# timed PPO per model in another session, so its seconds do not compare with VinePPO's there).
# From `make tiny`'s arith_hard SFT model, 8 iterations with an evaluation after each (left out of
# the wall-clock), seeds $SEEDS (default 0-5), two jobs at a time with one thread each, everything
# else as in the table. From the repository root (`make tiny` first):
#   bash results/wall_clock_per_model/run.sh
#   python analysis/compute_efficiency.py results/wall_clock_per_model/runs --method vineppo_k9 --out results/wall_clock_per_model
#   python analysis/compute_efficiency.py results/wall_clock_per_model/runs --method vineppo_k3 --out results/wall_clock_per_model/k3
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # name seed overrides...
  name=$1 seed=$2; shift 2
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$seed num_threads=1 \
    rl.iterations=8 rl.eval_every=1 rl.grad_clip_scope=per_model output_dir=runs/wall_clock_per_model "$@" \
    run_name=$name-arith_hard-s$seed > runs/wall_clock_per_model/$name-arith_hard-s$seed.log 2>&1
}
export -f job
export init
mkdir -p runs/wall_clock_per_model
for s in ${SEEDS:-0 1 2 3 4 5}; do
  echo "ppo $s rl.algo=ppo"
  echo "vineppo_k9 $s rl.algo=vineppo rl.vine_k=9"
  echo "vineppo_k3 $s rl.algo=vineppo rl.vine_k=3"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/wall_clock_per_model/runs
for d in runs/wall_clock_per_model/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/wall_clock_per_model/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/wall_clock_per_model/runs/$(basename "$d")/"
done
