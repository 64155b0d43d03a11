#!/usr/bin/env bash
# The authors' GSM8K steps against SPEC.md's. SPEC.md's GSM8K steps are lines, so the answer line
# ("#### n") is a step of its own and the state just before it gets an MC value; the authors'
# splitter (treetune/tasks/gsm8k.py) joins the answer line to the last reasoning line, so each
# response has one state fewer (rl.vine_steps=lines_answer, the paper preset's rule on GSM8K).
# Where the answer line only copies the last result, V(before it) is about the return and the two
# rules give the last line the same credit, for fewer MC rollouts; where the answer line itself
# goes wrong, only SPEC's rule blames it apart. VinePPO on arith_hard from `make tiny`'s SFT model,
# 8 iterations with an evaluation after each, as results/compute_efficiency_hard/ (whose VinePPO
# runs are SPEC's lines; seeds 0-1 are rerun here as a check that they reproduce), seeds $SEEDS
# (default 0-5), two jobs at a time with one thread each. From the repository root:
#   bash results/vine_steps_hard/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
if [ ! -d "$init" ]; then  # make tiny's SFT job for arith_hard, alone
  .venv/bin/vineppo sft preset=tiny num_threads=1 output_dir=runs/table1 task.name=arith_hard eval.num_samples=0 \
    seed=0 run_name=sft-arith_hard > runs/sft-arith_hard.log 2>&1
fi
job() {  # rule seed name (analyses key runs by folder name: vineppo_lines_answer-*, beside vineppo-*)
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$2 num_threads=1 rl.algo=vineppo \
    rl.iterations=8 rl.eval_every=1 rl.vine_steps=$1 output_dir=runs/vine_steps_hard/$1 \
    run_name=$3-arith_hard-s$2 > runs/vine_steps_hard/$1-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/vine_steps_hard
{ for s in ${SEEDS:-0 1 2 3 4 5}; do echo "lines_answer $s vineppo_lines_answer"; done
  for s in ${CHECK_SEEDS:-0 1}; do echo "auto $s vineppo"; done; } |
  while read -r rule s name; do [ -f runs/vine_steps_hard/$rule/$name-arith_hard-s$s/summary.json ] || echo "$rule $s $name"; done |
  xargs -r -P 2 -L 1 bash -c 'job "$@"' _
out=results/vine_steps_hard
for d in runs/vine_steps_hard/*/*/; do  # the run files (no checkpoints)
  dest=$out/runs/$(basename "$(dirname "$d")")/$(basename "$d")
  mkdir -p "$dest"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$dest/"
done
# Paired by seed against compute_efficiency_hard's VinePPO (the same SFT model and first prompts).
.venv/bin/python analysis/compute_efficiency.py $out/runs/lines_answer results/compute_efficiency_hard/runs/vineppo-* \
  --baseline vineppo --method vineppo_lines_answer --paired --out $out
