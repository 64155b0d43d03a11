#!/usr/bin/env bash
# Does the copy stutter come from the same flaw for PPO and GRPO? stutter/ read it in VinePPO's
# runs alone (three step rules): digit mass after a copied value at addition lines only, as their
# `-` flaw is unlearned. kl_exact/ found PPO and GRPO stutter as much. Here PPO and GRPO are rerun
# from flaw_ops/all's SFT model exactly as longer/ ran them (the same command; seeds $SEEDS,
# default 0-1), with every fourth checkpoint kept, one job at a time, one thread (their numbers
# are longer/'s, record for record: tests/analysis/test_reference_results.py), and
# copy_stutter.py reads their checkpoints. From the repository root, after results/flaw_ops/run.sh:
#   bash results/flaw_ops/longer/steps/stutter_methods/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/flaw_ops_all/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/flaw_ops/run.sh first" >&2; exit 1; }
mkdir -p runs/flaw_ops_stutter_methods
for s in ${SEEDS:-0 1}; do
  for a in ppo grpo; do
    [ -f runs/flaw_ops_stutter_methods/$a-arith-s$s/summary.json ] && continue
    .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
      rl.iterations=40 rl.eval_every=2 rl.algo=$a seed=$s rl.init=$init rl.save_every=4 rl.keep_checkpoints=0 \
      output_dir=runs/flaw_ops_stutter_methods run_name=$a-arith-s$s >> runs/flaw_ops_stutter_methods/$a-arith-s$s.log 2>&1
  done
done
out=results/flaw_ops/longer/steps/stutter_methods
for d in runs/flaw_ops_stutter_methods/*/; do  # the run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
.venv/bin/python analysis/copy_stutter.py runs/flaw_ops_stutter_methods --every 4 --out $out > runs/flaw_ops_stutter_methods/stutter.log 2>&1
