#!/usr/bin/env bash
# Is VinePPO's per-step lead over PPO step-level credit assignment, or only a better baseline than
# PPO's untrained critic? GRPO and RLOO also drop the value network, but give every token of a
# response one advantage from the other samples of its prompt (no step-level credit); VinePPO gives
# each step its own from MC values (credit_blame_hard/: they find the wrong step 71-74% of the time).
# GRPO, RLOO and VinePPO (K = 9) on arith_hard from `make tiny`'s SFT model, 8 iterations with an
# evaluation after each (left out of the wall-clock), everything else as in the table, seeds $SEEDS
# (default 0-5), two jobs at a time with one thread each and nothing else running, so that the three
# are timed alike (the VinePPO runs repeat wall_clock_hard/'s, number for number). From the
# repository root (`make tiny` first):
#   bash results/grpo_rloo_hard/run.sh
#   python analysis/compute_efficiency.py results/grpo_rloo_hard/runs --baseline grpo --out results/grpo_rloo_hard
#   python analysis/compute_efficiency.py results/grpo_rloo_hard/runs --baseline rloo --out results/grpo_rloo_hard/rloo
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$2 num_threads=1 rl.algo=$1 \
    rl.iterations=8 rl.eval_every=1 output_dir=runs/grpo_rloo_hard run_name=$1-arith_hard-s$2 \
    > runs/grpo_rloo_hard/$1-arith_hard-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/grpo_rloo_hard
for s in ${SEEDS:-0 1 2 3 4 5}; do
  echo "vineppo $s"
  echo "grpo $s"
  echo "rloo $s"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/grpo_rloo_hard/runs
for d in runs/grpo_rloo_hard/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/grpo_rloo_hard/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/grpo_rloo_hard/runs/$(basename "$d")/"
done
