#!/usr/bin/env bash
# flaw_ops/long/ left VinePPO ahead of GRPO by 4-5 points at iterations 18-20, both still rising, at
# the edge of 12 seeds' resolution, and had no PPO arm. Here all three run to 40 iterations from
# flaw_ops/all's SFT model, the sweep's settings, an evaluation every 2, seeds $SEEDS (default 0-11),
# two jobs at a time, one thread each: PPO from scratch; VinePPO and GRPO continue flaw_ops/long's
# 20-iteration runs (copied into runs/flaw_ops_longer, then rerun with rl.iterations=40: a finished
# run given more iterations continues from its last checkpoint exactly as an uninterrupted run
# would, tested in tests/test_loop.py). Then the paired comparisons against PPO and GRPO.
# A second pass (commit in each summary.json) added the table's other methods from scratch, the
# same way: RLOO and the RL-free RestEM and DPO+ (40 iterations each).
# A third pass added seeds 12-19 (VinePPO vs GRPO was not separated at 12 seeds): SEEDS="12 13 14
# 15 16 17 18 19" METHODS="ppo vineppo grpo", then METHODS="rloo", then METHODS="restem dpo_plus".
# Seeds flaw_ops/long/ never ran train all 40 iterations from scratch (the same numbers as a
# continued run: GRPO seed 0 retrained from scratch, scratch_check/, tested).
# From the repository root, after results/flaw_ops/run.sh and results/flaw_ops/long/run.sh:
#   bash results/flaw_ops/longer/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/flaw_ops_all/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/flaw_ops/run.sh first" >&2; exit 1; }
mkdir -p runs/flaw_ops_longer
seeds=${SEEDS:-0 1 2 3 4 5 6 7 8 9 10 11}
for s in $seeds; do
  for a in vineppo grpo; do
    src=runs/flaw_ops_long/$a-arith-s$s
    [ -e runs/flaw_ops_longer/$a-arith-s$s ] && continue
    if [ "$s" -le 11 ]; then  # long/ ran seeds 0-11: continue those
      [ -f $src/summary.json ] || { echo "missing $src: run results/flaw_ops/long/run.sh first" >&2; exit 1; }
      cp -r $src runs/flaw_ops_longer/
    fi
  done
done
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
    rl.iterations=40 rl.eval_every=2 rl.algo=$1 seed=$2 rl.init=$init output_dir=runs/flaw_ops_longer \
    run_name=$1-arith-s$2 >> runs/flaw_ops_longer/$1-arith-s$2.log 2>&1
}
export -f job
export init
methods=" ${METHODS:-ppo vineppo grpo rloo restem dpo_plus} "
jobs() {  # the seeds' jobs for those of the given methods asked for, seed by seed
  for s in $seeds; do for a in "$@"; do if [[ $methods == *" $a "* ]]; then echo "$a $s"; fi; done; done
}
jobs ppo | xargs -r -P 2 -L 1 bash -c 'job "$@"' _
jobs vineppo grpo | xargs -r -P 2 -L 1 bash -c 'job "$@"' _
jobs rloo restem dpo_plus | xargs -r -P 2 -L 1 bash -c 'job "$@"' _
out=results/flaw_ops/longer
for d in runs/flaw_ops_longer/*/; do  # the run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
.venv/bin/python analysis/compute_efficiency.py $out/runs --paired --out $out
.venv/bin/python analysis/compute_efficiency.py $out/runs --baseline grpo --paired --out $out/vs_grpo
.venv/bin/python analysis/compute_efficiency.py $out/runs --baseline rloo --paired --out $out/vs_rloo
.venv/bin/python analysis/compute_efficiency.py $out/runs --baseline restem --paired --out $out/vs_restem
.venv/bin/python analysis/compute_efficiency.py $out/runs --baseline dpo_plus --paired --out $out/vs_dpo_plus
.venv/bin/python analysis/rl_table.py $out/runs --out $out/table
