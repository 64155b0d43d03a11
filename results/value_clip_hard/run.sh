#!/usr/bin/env bash
# Does the value-loss clip (0.2, the paper's) hold PPO's value network back in a short run? Within an
# iteration's update the clipped loss stops pulling a token's value toward its return once it has
# moved 0.2 from where the iteration began, so a head that starts at 0 needs about three iterations
# to reach returns near 0.6 whatever its learning rate. critic_lr_hard/'s PPO runs at value-network
# rates 3e-4 and 3e-3 again with rl.value_clip=null (no clip), everything else the same (arith_hard
# from `make tiny`'s SFT model, 8 iterations, an evaluation after each, every 2nd checkpoint kept),
# seeds $SEEDS (default 0-5), two jobs at a time with one thread each. (At the shared rate the
# value network moves less than 0.05 in 8 iterations: the clip never binds; not run.) Run from the
# repository root:
#   bash results/value_clip_hard/run.sh
#   python analysis/critic.py results/value_clip_hard/runs results/critic_lr_hard/runs --out results/value_clip_hard
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # name seed overrides...
  name=$1 seed=$2; shift 2
  .venv/bin/vineppo rl preset=tiny rl.init=runs/table1/sft-arith_hard/final task.name=arith_hard seed=$seed \
    num_threads=1 rl.algo=ppo rl.iterations=8 rl.eval_every=1 rl.save_every=2 rl.keep_checkpoints=0 \
    rl.value_clip=null output_dir=runs/value_clip_hard "$@" run_name=$name-arith_hard-s$seed \
    > runs/value_clip_hard/$name-arith_hard-s$seed.log 2>&1
}
export -f job
mkdir -p runs/value_clip_hard
for s in ${SEEDS:-0 1 2 3 4 5}; do
  echo "ppo_vlr3e-4_noclip $s rl.value_learning_rate=3e-4"
  echo "ppo_vlr3e-3_noclip $s rl.value_learning_rate=3e-3"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/value_clip_hard/runs
for d in runs/value_clip_hard/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/value_clip_hard/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/value_clip_hard/runs/$(basename "$d")/"
done
