#!/usr/bin/env bash
# Is the copy stutter the side effect of unlearning one flaw? stutter/ (copy_stutter.py on steps/'s
# runs) found the stutter's digit mass after a copied value almost only at addition lines, whose
# flaw is `-`, rising as RL pushes that `-` down; not at division lines, whose flaw is `-` too, nor
# at the others. Here the SFT pool's flaw hits every kind of step but addition
# (task.flaw_ops=[sub,mul,div]; its own SFT model, else as flaw_ops/all's: the tiny preset, seed
# 0), and VinePPO runs from it with steps/'s settings (the task's steps, 40 iterations, an
# evaluation every 2, K = 9, every fourth checkpoint kept), seeds $SEEDS (default 0-3), two jobs at
# a time, one thread each. If the stutter comes from unlearning `-` at addition lines, these runs
# do not stutter; if from unlearning flaws at all, they do, at other lines. Then copy_stutter.py and
# error_anatomy.py (fixed-input copy errors) on their kept checkpoints.
# A second pass (commit in each summary.json) added GRPO from the same SFT model, the same way,
# seeds 0-3 (ALGOS=grpo): without the mirrored pair of flaws, is VinePPO still ahead of GRPO?
# Compared seed by seed (vs_grpo/). From the repository root:
#   bash results/flaw_ops/longer/steps/no_add_flaw/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
mkdir -p runs/flaw_ops_no_add
init=runs/flaw_ops_no_add/sft-arith/final
if [ ! -d "$init" ]; then
  .venv/bin/vineppo sft preset=tiny task.name=arith 'task.flaw_ops=[sub,mul,div]' num_threads=1 eval.num_samples=0 \
    seed=0 output_dir=runs/flaw_ops_no_add run_name=sft-arith > runs/flaw_ops_no_add/sft.log 2>&1
fi
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[sub,mul,div]' num_threads=1 \
    rl.iterations=40 rl.eval_every=2 rl.algo=$1 seed=$2 rl.init=$init rl.save_every=4 \
    rl.keep_checkpoints=0 output_dir=runs/flaw_ops_no_add run_name=$1-arith-s$2 \
    >> runs/flaw_ops_no_add/$1-arith-s$2.log 2>&1
}
export -f job
export init
for s in ${SEEDS:-0 1 2 3}; do for a in ${ALGOS:-vineppo grpo}; do
  [ -f runs/flaw_ops_no_add/$a-arith-s$s/summary.json ] || echo "$a $s"
done; done | xargs -r -P 2 -L 1 bash -c 'job "$@"' _
out=results/flaw_ops/longer/steps/no_add_flaw
for d in runs/flaw_ops_no_add/*/; do  # the run files (no checkpoints), the SFT run's too, and each
  # evaluation's per-problem bits, so vs_grpo/ also counts the test set's own noise
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
  if [ -f "$d"/eval/greedy_correct.json ]; then
    mkdir -p "$out/runs/$(basename "$d")/eval" && cp "$d"/eval/greedy_correct.json "$out/runs/$(basename "$d")/eval/"
  fi
done
.venv/bin/python analysis/error_anatomy.py runs/flaw_ops_no_add --every 4 --out $out/errors > runs/flaw_ops_no_add/errors.log 2>&1 &
.venv/bin/python analysis/copy_stutter.py runs/flaw_ops_no_add --every 4 --out $out/stutter > runs/flaw_ops_no_add/stutter.log 2>&1
if ls $out/runs/grpo-* > /dev/null 2>&1; then
  .venv/bin/python analysis/compute_efficiency.py $out/runs/vineppo-* $out/runs/grpo-* --baseline grpo --paired \
    --out $out/vs_grpo > runs/flaw_ops_no_add/vs_grpo.log 2>&1
fi
wait
