#!/usr/bin/env bash
# PPO's value head as the authors draw it. Every PPO run in results/ starts its value network's
# scalar head at zero (V = 0 on every state, so the first advantages are the plain returns); the
# authors' code draws the head's weights from N(0, 1 / (hidden + 1)) (treetune's value head), so V
# starts as a random projection of each state's hidden vector: rl.value_head_init=normal, the paper
# preset's. Does that start change PPO in the miniature? PPO on arith_hard from `make tiny`'s SFT
# model, 8 iterations with an evaluation after each, as grad_clip_hard/ (whose runs are the zero
# head, and which seeds 0-1 here rerun as a check that runs reproduce), seeds $SEEDS (default
# 0-5), two jobs at a time with one thread each. From the repository root:
#   bash results/value_head_hard/run.sh
#   python analysis/compute_efficiency.py results/value_head_hard/runs/normal results/grad_clip_hard/runs \
#     --baseline ppo --method ppo_headnormal --paired --out results/value_head_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
if [ ! -d "$init" ]; then  # make tiny's SFT job for arith_hard, alone
  .venv/bin/vineppo sft preset=tiny num_threads=1 output_dir=runs/table1 task.name=arith_hard eval.num_samples=0 \
    seed=0 run_name=sft-arith_hard > runs/sft-arith_hard.log 2>&1
fi
job() {  # head seed name (analyses key runs by folder name: ppo_headnormal-*, beside grad_clip_hard/'s ppo-*)
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$2 num_threads=1 rl.algo=ppo \
    rl.iterations=8 rl.eval_every=1 rl.value_head_init=$1 output_dir=runs/value_head_hard/$1 \
    run_name=$3-arith_hard-s$2 > runs/value_head_hard/$1-s$2.log 2>&1
}
export -f job
export init
mkdir -p runs/value_head_hard
{ for s in ${SEEDS:-0 1 2 3 4 5}; do echo "normal $s ppo_headnormal"; done
  for s in ${CHECK_SEEDS:-0 1}; do echo "zero $s ppo"; done; } |
  xargs -P 2 -L 1 bash -c 'job "$@"' _
for head in normal zero; do
  for d in runs/value_head_hard/$head/*/; do  # the run files (no checkpoints) kept with the results
    mkdir -p "results/value_head_hard/runs/$head/$(basename "$d")"
    cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/value_head_hard/runs/$head/$(basename "$d")/"
    cp -r "$d"/eval "results/value_head_hard/runs/$head/$(basename "$d")/"
  done
done
