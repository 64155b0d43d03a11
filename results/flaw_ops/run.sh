#!/usr/bin/env bash
# Does VinePPO's step-level credit pay off where the SFT model is unsure at many steps? (beyond the
# paper; a lead from grpo_rloo_hard/ and gradient_alignment_hard/: with one kind of flawed step,
# every method's update points the same way). Two arms, everything as in the table's arith but 8
# iterations with an evaluation after each, PPO (clipped per model), VinePPO (K = 9) and GRPO,
# $SEEDS seeds (default 6):
#   all: sweep=flaw_ops, the SFT pool's flaw on every kind of step (task.flaw_ops=[add,sub,mul,div]),
#        its own SFT model;
#   sub: the same sweep with task.flaw_ops=[sub], the table's arith SFT model (copied from
#        runs/table1/sft-arith when `make tiny` made it: the same config, deterministic; else trained).
# The two sweeps run side by side, one job each at a time, one thread per job. Then the run files
# (no checkpoints) into results/flaw_ops/{all,sub}/runs and the analyses (runs that are complete
# are skipped: SEEDS=12 after a first pass adds seeds 6-11). From the repository root:
#   bash results/flaw_ops/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
n=${SEEDS:-6}
mkdir -p runs/flaw_ops_sub
if [ ! -e runs/flaw_ops_sub/sft-arith ] && [ -f runs/table1/sft-arith/summary.json ]; then
  cp -r runs/table1/sft-arith runs/flaw_ops_sub/
fi
.venv/bin/python experiments/launch.py sweep=flaw_ops seeds=$n max_parallel=1 output_dir=runs/flaw_ops_all \
  > runs/flaw_ops_all.log 2>&1 &
.venv/bin/python experiments/launch.py sweep=flaw_ops seeds=$n max_parallel=1 output_dir=runs/flaw_ops_sub \
  'task.flaw_ops=[sub]' > runs/flaw_ops_sub.log 2>&1 &
wait %1 %2
keep() {  # run folders -> results folder: the run files with every test answer (no checkpoints)
  for d in "$1"/*/; do
    [ -f "$d/summary.json" ] || continue  # submitit's own folder
    r="$2/$(basename "$d")"
    mkdir -p "$r/eval"
    cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$r/"
    cp "$d"/eval/test.json "$r/eval/" 2>/dev/null || true  # an SFT run's, and RL's last evaluation
  done
}
for arm in all sub; do
  out=results/flaw_ops/$arm
  keep runs/flaw_ops_$arm $out/runs
  .venv/bin/python analysis/compute_efficiency.py $out/runs --paired --out $out
  .venv/bin/python analysis/compute_efficiency.py $out/runs --baseline grpo --paired --out $out/vs_grpo
done
# The mechanism: on one iteration's episodes from each arm's SFT model, how close each method's
# policy gradient comes to one from near-exact step credit (MC, K = 64), as gradient_alignment_hard/.
for arm in all sub; do
  .venv/bin/python analysis/gradient_alignment.py runs/flaw_ops_$arm/sft-arith/final --task arith \
    --out results/flaw_ops/gradient_alignment/$arm
done
