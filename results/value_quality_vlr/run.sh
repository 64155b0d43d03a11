#!/usr/bin/env bash
# Claims 3 and 4 with a value network that has learned: the `value_accuracy` sweep's PPO run (arith,
# 8 iterations, every 2nd checkpoint kept with its value network) at the policy's learning rate
# (3e-5, the control: value_accuracy_run/ again) and with rl.value_learning_rate 3e-4 and 3e-3, from
# `make tiny`'s arith SFT model, one after another on one thread. Then value_quality.py on each at
# iteration 2, with the arguments of results/value_quality/. Run from the repository root:
#   bash results/value_quality_vlr/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
mkdir -p runs/value_quality_vlr
for v in ${RATES:-3e-3 3e-4 null}; do
  name=ppo_vlr$v-arith-s0
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith seed=0 num_threads=1 rl.algo=ppo \
    rl.iterations=8 rl.eval_every=2 rl.save_every=2 rl.keep_checkpoints=0 rl.value_learning_rate=$v \
    output_dir=runs/value_quality_vlr run_name=$name > runs/value_quality_vlr/$name.log 2>&1
  .venv/bin/python analysis/value_quality.py runs/value_quality_vlr/$name --checkpoints 2 --problems 192 \
    --truth-samples 64 --ranking-states 650 --alternatives 4 --out results/value_quality_vlr/vlr$v \
    > runs/value_quality_vlr/$name.value_quality.log 2>&1
done
