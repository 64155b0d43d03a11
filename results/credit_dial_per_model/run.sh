#!/usr/bin/env bash
# credit_dial/ again with PPO clipped per model (the paper's actor and critic; grad_clip_hard/): the
# VinePPO - PPO gap by chain length (2-3, 4-6, 7-9 steps). The whole sweep again at the current code
# (its SFT on arith problems of 2 to 9 steps, then PPO and VinePPO, $SEEDS seeds (default 6), 5
# iterations; the SFT comes out as in credit_dial/), and as a control PPO clipped jointly
# (rl.grad_clip_scope=joint, the old default) from the same SFT model with the sweep's settings, so
# that the clip's effect is apart from the code's other changes since credit_dial/. Then the dial
# analysis of each PPO against the same VinePPO runs. From the repository root:
#   bash results/credit_dial_per_model/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
n=${SEEDS:-6}
.venv/bin/python experiments/launch.py sweep=credit_dial seeds=$n output_dir=runs/credit_dial_per_model \
  rl.grad_clip_scope=per_model >> runs/credit_dial_per_model.log 2>&1
joint() {  # seed; the sweep's overrides (experiments/sweeps/credit_dial.yaml), clipped jointly
  .venv/bin/vineppo rl preset=tiny task.min_steps=2 task.max_steps=9 num_threads=1 task.name=arith \
    rl.iterations=5 rl.eval_every=5 rl.algo=ppo rl.grad_clip_scope=joint seed=$1 \
    rl.init=runs/credit_dial_per_model/sft-arith/final output_dir=runs/credit_dial_joint run_name=ppo-arith-s$1 \
    > runs/credit_dial_joint.ppo-arith-s$1.log 2>&1
}
export -f joint
mkdir -p runs/credit_dial_joint
seq 0 $((n - 1)) | xargs -P 2 -L 1 bash -c 'joint "$@"' _
keep() {  # run folders -> results folder: the run files with every test answer (no checkpoints)
  for d in "$1"/*/; do
    [ -f "$d/summary.json" ] || continue  # submitit's own folder
    r="$2/$(basename "$d")"
    mkdir -p "$r/eval"
    cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$r/"
    cp "$d"/eval/test.json "$r/eval/"
  done
}
keep runs/credit_dial_per_model results/credit_dial_per_model/runs
keep runs/credit_dial_joint results/credit_dial_per_model/joint_runs
out=results/credit_dial_per_model
.venv/bin/python analysis/credit_assignment.py dial $out/runs --out $out
.venv/bin/python analysis/credit_assignment.py dial $out/joint_runs $out/runs/sft-arith $out/runs/vineppo-* --out $out/joint_clip
