#!/usr/bin/env bash
# credit_dial/ again with PPO clipped per model (the paper's actor and critic; grad_clip_hard/): the
# VinePPO - PPO gap by chain length (2-3, 4-6, 7-9 steps). The whole sweep again (its SFT on arith
# problems of 2 to 9 steps, then PPO and VinePPO, 3 seeds, 5 iterations; SFT and VinePPO should
# come out as in credit_dial/, PPO is what changed), then the dial analysis. From the repository root:
#   bash results/credit_dial_per_model/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
.venv/bin/python experiments/launch.py sweep=credit_dial output_dir=runs/credit_dial_per_model \
  rl.grad_clip_scope=per_model > runs/credit_dial_per_model.log 2>&1
mkdir -p results/credit_dial_per_model/runs
for d in runs/credit_dial_per_model/*/; do  # the run files with every test answer (no checkpoints)
  r="results/credit_dial_per_model/runs/$(basename "$d")"
  mkdir -p "$r/eval"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$r/"
  cp "$d"/eval/test.json "$r/eval/"
done
.venv/bin/python analysis/credit_assignment.py dial results/credit_dial_per_model/runs --out results/credit_dial_per_model
