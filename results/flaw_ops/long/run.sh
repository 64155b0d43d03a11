#!/usr/bin/env bash
# flaw_ops/ left open whether VinePPO and GRPO separate with more training (both still rising at
# iteration 8). VinePPO (K = 9) and GRPO from flaw_ops/all's SFT model, the sweep's settings but 20
# iterations with an evaluation every 2, seeds $SEEDS (default 0-11), two jobs at a time, one thread
# each; then the paired comparison. From the repository root, after results/flaw_ops/run.sh:
#   bash results/flaw_ops/long/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/flaw_ops_all/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/flaw_ops/run.sh first" >&2; exit 1; }
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
    rl.iterations=20 rl.eval_every=2 rl.algo=$1 seed=$2 rl.init=$init output_dir=runs/flaw_ops_long \
    run_name=$1-arith-s$2 > runs/flaw_ops_long/$1-arith-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/flaw_ops_long
for s in ${SEEDS:-0 1 2 3 4 5 6 7 8 9 10 11}; do echo "vineppo $s"; echo "grpo $s"; done | xargs -P 2 -L 1 bash -c 'job "$@"' _
out=results/flaw_ops/long
for d in runs/flaw_ops_long/*/; do  # the run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
.venv/bin/python analysis/compute_efficiency.py $out/runs --baseline grpo --paired --out $out
