#!/usr/bin/env bash
# On flaw_ops VinePPO leads PPO by up to 8 points at iterations 18-20 (longer/, 20 seeds). That PPO's
# value network trains at the policy's rate and barely learns (critic_lr_hard/: explained variance
# near 0 in 8 iterations), so its advantages are close to a whitened response-level return. The
# paper's PPO has a critic that learned something. Does a critic that learns close the gap? PPO
# with its value network at 3e-3 (100x the policy's rate; explained variance 0.21 by iteration 8 on
# arith_hard, the most of the rates tried, critic_lr_per_model/) from flaw_ops/all's SFT model, the
# settings of longer/ (40 iterations, an evaluation every 2), seeds $SEEDS (default 0-11), two jobs at
# a time, one thread each; PPO at the shared rate and VinePPO are longer/'s runs of the same seeds.
# From the repository root, after results/flaw_ops/run.sh:
#   bash results/flaw_ops/longer/critic/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/flaw_ops_all/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/flaw_ops/run.sh first" >&2; exit 1; }
mkdir -p runs/flaw_ops_critic
seeds=${SEEDS:-0 1 2 3 4 5 6 7 8 9 10 11}
job() {  # seed
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
    rl.iterations=40 rl.eval_every=2 rl.algo=ppo rl.value_learning_rate=3e-3 seed=$1 rl.init=$init \
    output_dir=runs/flaw_ops_critic run_name=ppo_vlr3e-3-arith-s$1 >> runs/flaw_ops_critic/ppo_vlr3e-3-arith-s$1.log 2>&1
}
export -f job
export init
for s in $seeds; do echo "$s"; done | xargs -r -P 2 -L 1 bash -c 'job "$@"' _
out=results/flaw_ops/longer/critic
for d in runs/flaw_ops_critic/*/; do  # the run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
theirs=()  # longer/'s VinePPO and PPO runs of every seed run here (both passes: SEEDS="12 ... 19" added 8)
for d in $out/runs/ppo_vlr3e-3-arith-s*; do
  s=${d##*-s}; theirs+=(results/flaw_ops/longer/runs/vineppo-arith-s$s results/flaw_ops/longer/runs/ppo-arith-s$s)
done
.venv/bin/python analysis/compute_efficiency.py $out/runs "${theirs[@]}" --baseline ppo_vlr0.003 --paired --out $out/vs_vineppo
.venv/bin/python analysis/compute_efficiency.py $out/runs "${theirs[@]}" --method ppo_vlr0.003 --paired --out $out/vs_ppo
.venv/bin/python analysis/critic.py $out/runs "${theirs[@]}" --out $out/critic
