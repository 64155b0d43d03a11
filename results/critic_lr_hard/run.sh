#!/usr/bin/env bash
# Is PPO's critic learning at all in the tiny preset's short runs, and does PPO catch up with
# VinePPO per step when it does? PPO on arith_hard from `make tiny`'s SFT model with the value
# network at the policy's learning rate (3e-5, the paper's one rate: the control, which should repeat
# wall_clock_hard/'s PPO runs number for number) and at 10x and 100x that rate
# (rl.value_learning_rate), 8 iterations with an evaluation after each, every 2nd checkpoint kept
# with its value network (for analysis/value_quality.py), seeds $SEEDS (default 0-2), two jobs at a
# time with one thread each, everything else as in the table. Run from the repository root:
#   bash results/critic_lr_hard/run.sh    (then SEEDS="3 4 5" bash results/critic_lr_hard/run.sh)
#   python analysis/critic.py runs/critic_lr_hard --out results/critic_lr_hard
#   python analysis/compute_efficiency.py runs/critic_lr_hard --method ppo_vlr0.0003 --out results/critic_lr_hard/vs_ppo
#   python analysis/compute_efficiency.py runs/critic_lr_hard runs/wall_clock_hard/vineppo_k9-* --baseline ppo_vlr0.0003 \
#     --out results/critic_lr_hard/vs_vineppo      (and --baseline ppo_vlr0.003 --out .../vs_vineppo_vlr0.003)
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # name seed overrides...
  name=$1 seed=$2; shift 2
  .venv/bin/vineppo rl preset=tiny rl.init=runs/table1/sft-arith_hard/final task.name=arith_hard seed=$seed \
    num_threads=1 rl.algo=ppo rl.iterations=8 rl.eval_every=1 rl.save_every=2 rl.keep_checkpoints=0 \
    output_dir=runs/critic_lr_hard "$@" run_name=$name-arith_hard-s$seed > runs/critic_lr_hard/$name-arith_hard-s$seed.log 2>&1
}
export -f job
mkdir -p runs/critic_lr_hard
for s in ${SEEDS:-0 1 2}; do
  echo "ppo $s"
  echo "ppo_vlr3e-4 $s rl.value_learning_rate=3e-4"
  echo "ppo_vlr3e-3 $s rl.value_learning_rate=3e-3"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
