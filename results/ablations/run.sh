#!/usr/bin/env bash
# The K and temperature ablations on arith at the sweeps' own settings (15 iterations, evaluated
# every 5) with 3 seeds: VinePPO with K = 1, 3, 9 (sweep=mc_samples); PPO and VinePPO at T = 0.6,
# 0.8, 1.0 (sweep=temperature); from the main table's SFT model (copied into each sweep's folder),
# two jobs at a time, one thread each. Then accuracy vs K, vs T, vs KL and vs train accuracy over
# these and results/compute_efficiency/'s runs. From the repository root, after
# results/compute_efficiency/run.sh:
#   bash results/ablations/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
sft=runs/table1/sft-arith
[ -f $sft/summary.json ] || { echo "missing $sft: run make tiny (or make tiny-sft) first" >&2; exit 1; }
[ -d results/compute_efficiency/runs ] || { echo "run results/compute_efficiency/run.sh first" >&2; exit 1; }
out=results/ablations
rm -rf $out/runs
mkdir -p $out/runs
cp -r results/compute_efficiency/runs $out/runs/compute_efficiency
for sweep in mc_samples temperature; do
  mkdir -p runs/$sweep
  [ -e runs/$sweep/sft-arith ] || cp -r $sft runs/$sweep/
  .venv/bin/python experiments/launch.py sweep=$sweep seeds=3 max_parallel=2 num_threads=1
  for d in runs/$sweep/*-s[0-9]*/; do  # the RL run files (no checkpoints)
    mkdir -p "$out/runs/$sweep/$(basename "$d")"
    cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$sweep/$(basename "$d")/"
  done
done
.venv/bin/python analysis/ablations.py $out/runs/compute_efficiency $out/runs/mc_samples \
  $out/runs/temperature --out $out
