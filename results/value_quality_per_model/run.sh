#!/usr/bin/env bash
# Claims 3 and 4 again with PPO clipped per model (the paper's actor and critic; the default since
# grad_clip_hard/): value_quality_vlr/'s design at the current code. PPO on arith from `make tiny`'s
# SFT model, 8 iterations, every 2nd checkpoint kept with its value network, value network at the
# policy's rate (3e-5) and at 3e-4 / 3e-3, seed 0; then value_quality.py at iterations 2 and 4 with
# the arguments of value_quality/ (192 held-out problems, ground truth from 64 continuations, 650
# ranking states with up to 4 alternative next steps). Two jobs at a time, one thread each.
# From the repository root (`make tiny` first):
#   bash results/value_quality_per_model/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/table1/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
job() {  # value-network learning rate
  v=$1 name=ppo_vlr$1-arith-s0 runs=runs/value_quality_per_model
  .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith seed=0 num_threads=1 rl.algo=ppo \
    rl.iterations=8 rl.eval_every=2 rl.save_every=2 rl.keep_checkpoints=0 rl.value_learning_rate=$v \
    rl.grad_clip_scope=per_model output_dir=$runs run_name=$name > $runs/$name.log 2>&1
  for c in 2 4; do
    out=results/value_quality_per_model/vlr$v; [ $c = 2 ] || out=$out/step$c
    .venv/bin/python analysis/value_quality.py $runs/$name --checkpoints $c --problems 192 \
      --truth-samples 64 --ranking-states 650 --alternatives 4 --out $out > $runs/$name.value_quality$c.log 2>&1
  done
}
export -f job
export init
mkdir -p runs/value_quality_per_model
printf '%s\n' ${RATES:-3e-3 3e-4 null} | xargs -P 2 -L 1 bash -c 'job "$@"' _
mkdir -p results/value_quality_per_model/runs
for d in runs/value_quality_per_model/*/; do  # the run files (no checkpoints) kept with the results
  mkdir -p "results/value_quality_per_model/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "results/value_quality_per_model/runs/$(basename "$d")/"
done
