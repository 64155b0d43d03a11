#!/usr/bin/env bash
# Does PPO's critic matter once advantages are not whitened? With gamma = lambda = 1 and whitened
# advantages a critic's learned level cancels (critic_lr_per_model/; tests/test_advantages.py), so
# only its state-dependent part can act. Here rl.whiten_advantages=false for every arm: PPO with the
# value network at the policy's rate (3e-5) and at 3e-3 (where it learns the level within the run),
# and VinePPO (K = 9), so that no method gets a setting the others lack. PPO clipped per model.
# arith_hard from `make tiny`'s SFT model, 8 iterations with an evaluation after each, seeds $SEEDS
# (default 0-5), two jobs at a time with one thread each, everything else as in the table; the
# whitened arms are wall_clock_per_model/'s and critic_lr_per_model/'s runs (same seeds and prompts).
# From the repository root (`make tiny` first):
#   bash results/whiten_hard/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith_hard/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # name seed overrides...
  name=$1 seed=$2; shift 2
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith_hard seed=$seed num_threads=1 \
    rl.iterations=8 rl.eval_every=1 rl.grad_clip_scope=per_model rl.whiten_advantages=false \
    output_dir=runs/whiten_hard "$@" run_name=$name-arith_hard-s$seed > runs/whiten_hard/$name-arith_hard-s$seed.log 2>&1
}
export -f job
export init
mkdir -p runs/whiten_hard
for s in ${SEEDS:-0 1 2 3 4 5}; do
  echo "ppo_nowhiten $s rl.algo=ppo"
  echo "ppo_vlr3e-3_nowhiten $s rl.algo=ppo rl.value_learning_rate=3e-3"
  echo "vineppo_k9_nowhiten $s rl.algo=vineppo rl.vine_k=9"
done | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/whiten_hard/runs
for d in runs/whiten_hard/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/whiten_hard/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/whiten_hard/runs/$(basename "$d")/"
done
