#!/usr/bin/env bash
# The authors' GSM8K steps against SPEC.md's. SPEC.md's GSM8K steps are lines, so the answer line
# ("#### n") is a step of its own and the state just before it gets an MC value; the authors'
# splitter (treetune/tasks/gsm8k.py) joins the answer line to the last reasoning line, so each
# response has one state fewer (rl.vine_steps=lines_answer, the paper preset's rule on GSM8K).
# Where the answer line only copies the last result, V(before it) is about the return, and the two
# rules give the last line the same credit for fewer MC rollouts; where the answer line goes wrong
# by itself (a copy that stutters), only SPEC's rule blames it apart from the line before it.
# VinePPO as ../ (flaw_ops/all's SFT model, 40 iterations, an evaluation every 2, K = 9), seeds
# $SEEDS (default 0-5), two jobs at a time with one thread each; ../runs/vineppo_auto-* are SPEC's
# lines, and seed $CHECK_SEEDS (default 0) of them is rerun here as a check that they reproduce.
# From the repository root, after results/flaw_ops/run.sh:
#   bash results/flaw_ops/longer/steps/answer/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/flaw_ops_all/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/flaw_ops/run.sh first" >&2; exit 1; }
job() {  # rule seed name (analyses key runs by folder name: vineppo_lines_answer-*, beside vineppo_auto-*)
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
    rl.iterations=40 rl.eval_every=2 rl.algo=vineppo rl.vine_steps=$1 seed=$2 rl.init=$init rl.save_every=4 \
    output_dir=runs/flaw_ops_steps_answer run_name=$3-arith-s$2 >> runs/flaw_ops_steps_answer/$3-arith-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/flaw_ops_steps_answer
{ for s in ${CHECK_SEEDS:-0}; do echo "auto $s vineppo_auto"; done
  for s in ${SEEDS:-0 1 2 3 4 5}; do echo "lines_answer $s vineppo_lines_answer"; done; } |
  while read -r rule s name; do [ -f runs/flaw_ops_steps_answer/$name-arith-s$s/summary.json ] || echo "$rule $s $name"; done |
  xargs -r -P 2 -L 1 bash -c 'job "$@"' _
out=results/flaw_ops/longer/steps/answer
for d in runs/flaw_ops_steps_answer/*/; do  # the run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
# Paired by seed against ../'s SPEC lines (the same SFT model and first prompts and episodes).
.venv/bin/python analysis/compute_efficiency.py $out/runs/vineppo_lines_answer-* results/flaw_ops/longer/steps/runs/vineppo_auto-* \
  --baseline vineppo --method vineppo_lines_answer --paired --out $out
