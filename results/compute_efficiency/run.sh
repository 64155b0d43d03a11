#!/usr/bin/env bash
# PPO and VinePPO on arith from the main table's SFT model (copied into the sweep's folder, so the
# sweep's SFT stage counts as done and both start from the same model): 3 seeds, 8 iterations, test
# accuracy after every iteration; two jobs at a time, one thread each. Then the curves against
# gradient steps and wall-clock (and to within a point of PPO's peak). From the repository root,
# after `make tiny` (or `make tiny-sft`):
#   bash results/compute_efficiency/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
sft=runs/table1/sft-arith
[ -f $sft/summary.json ] || { echo "missing $sft: run make tiny (or make tiny-sft) first" >&2; exit 1; }
mkdir -p runs/compute_efficiency
[ -e runs/compute_efficiency/sft-arith ] || cp -r $sft runs/compute_efficiency/
.venv/bin/python experiments/launch.py sweep=compute_efficiency max_parallel=2 num_threads=1
out=results/compute_efficiency
rm -rf $out/runs
for d in runs/compute_efficiency/*-s[0-9]*/; do  # the RL run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
.venv/bin/python analysis/compute_efficiency.py $out/runs --paired --out $out
# Both curves sit on the miniature's ceiling from iteration 2: "PPO's peak" is then its best mean in
# the third decimal, so also time both to within a point of it
.venv/bin/python analysis/compute_efficiency.py $out/runs --tolerance 0.01 --out $out/tolerance_0.01
