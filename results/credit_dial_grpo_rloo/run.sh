#!/usr/bin/env bash
# Is VinePPO's lead on longer chains in credit_dial_per_model/ step-level credit, or having a
# per-prompt baseline at all? GRPO and RLOO (one advantage per response, against the prompt's other
# samples) on the dial, from credit_dial_per_model/'s SFT model with the credit_dial sweep's settings
# (experiments/sweeps/credit_dial.yaml), seeds $SEEDS (default 0-5), two jobs at a time, one thread
# each; then the dial analysis of each against credit_dial_per_model/'s VinePPO runs. From the
# repository root, after results/credit_dial_per_model/run.sh:
#   bash results/credit_dial_grpo_rloo/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/credit_dial_per_model/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/credit_dial_per_model/run.sh first" >&2; exit 1; }
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny task.min_steps=2 task.max_steps=9 num_threads=1 task.name=arith \
    rl.iterations=5 rl.eval_every=5 rl.algo=$1 seed=$2 rl.init=$init output_dir=runs/credit_dial_grpo_rloo \
    run_name=$1-arith-s$2 > runs/credit_dial_grpo_rloo/$1-arith-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/credit_dial_grpo_rloo
for s in ${SEEDS:-0 1 2 3 4 5}; do echo "grpo $s"; echo "rloo $s"; done | xargs -P 2 -L 1 bash -c 'job "$@"' _
out=results/credit_dial_grpo_rloo
for d in runs/credit_dial_grpo_rloo/*/; do  # the run files with every test answer (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")/eval"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
  cp "$d"/eval/test.json "$out/runs/$(basename "$d")/eval/"
done
dial=(results/credit_dial_per_model/runs/sft-arith results/credit_dial_per_model/runs/vineppo-*)
.venv/bin/python analysis/credit_assignment.py dial $out/runs/grpo-* "${dial[@]}" --baseline grpo --out $out
.venv/bin/python analysis/credit_assignment.py dial $out/runs/rloo-* "${dial[@]}" --baseline rloo --out $out/rloo
