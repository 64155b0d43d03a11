#!/usr/bin/env bash
# Is a gap between two methods more than the test set's own noise? Two earlier verdicts rest on
# mid-training gaps, where runs before this commit kept only the accuracy, not which problems:
# compute_efficiency/ (arith, 3 seeds: VinePPO 0.6-0.7 points above PPO at iterations 2-3, called
# separated) and flaw_ops/longer/ (VinePPO +5.2 / +4.2 / +2.9 points above GRPO at iterations 18 /
# 20 / 22, 20 seeds). Both rerun here with the same settings and seeds (same numbers: tested against
# those folders), now keeping every evaluation's per-problem bits (eval/greedy_correct.json):
#   compute_efficiency: PPO and VinePPO on arith from make tiny's SFT model, 3 seeds, 8 iterations;
#   flaw_ops: VinePPO and GRPO from flaw_ops/all's SFT model, seeds 0-19, to iteration 22
#             (flaw_ops/longer/'s runs stopped there; an evaluation every 2).
# Two jobs at a time, one thread each. Then analysis/test_noise.py on each. From the repository
# root, after `make tiny` (or `make tiny-sft`) and results/flaw_ops/run.sh:
#   bash results/test_noise/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
sft=runs/table1/sft-arith
flaw_init=runs/flaw_ops_all/sft-arith/final
[ -f $sft/summary.json ] || { echo "missing $sft: run make tiny (or make tiny-sft) first" >&2; exit 1; }
[ -d $flaw_init ] || { echo "missing $flaw_init: run results/flaw_ops/run.sh first" >&2; exit 1; }
mkdir -p runs/test_noise_ce runs/test_noise_flaw_ops
[ -e runs/test_noise_ce/sft-arith ] || cp -r $sft runs/test_noise_ce/
.venv/bin/python experiments/launch.py sweep=compute_efficiency max_parallel=2 num_threads=1 \
  output_dir=runs/test_noise_ce
job() {  # algo seed
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
    rl.iterations=22 rl.eval_every=2 rl.algo=$1 seed=$2 rl.init=$flaw_init output_dir=runs/test_noise_flaw_ops \
    run_name=$1-arith-s$2 >> runs/test_noise_flaw_ops/$1-arith-s$2.log 2>&1
}
export -f job
export flaw_init
for s in $(seq 0 19); do echo "vineppo $s"; echo "grpo $s"; done | xargs -r -P 2 -L 1 bash -c 'job "$@"' _
for part in ce:compute_efficiency flaw_ops:flaw_ops; do
  src=runs/test_noise_${part%%:*} out=results/test_noise/${part#*:}
  rm -rf $out/runs
  for d in $src/*-s[0-9]*/; do  # the run files (no checkpoints, no answers: the bits are enough)
    mkdir -p "$out/runs/$(basename "$d")/eval"
    cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
    cp "$d"/eval/greedy_correct.json "$out/runs/$(basename "$d")/eval/"
  done
  .venv/bin/python analysis/test_noise.py $out/runs --out $out
done
# The last evaluation of earlier sweeps, every pair of methods, from their runs' eval/test.json
# (the runs under runs/ that their run.sh or `make tiny` made; correct.csv keeps the bits)
for name in table1 flaw_ops_longer grpo_rloo_hard wall_clock_per_model; do
  .venv/bin/python analysis/test_noise.py runs/$name --all-pairs --out results/test_noise/final/$name
done
# The speed-up analyses again on the new runs: with every run's bits, compute_efficiency.py also asks
# the gaps to clear the test set's noise before it claims a speed-up (separation_with_test_set)
.venv/bin/python analysis/compute_efficiency.py results/test_noise/compute_efficiency/runs --paired \
  --out results/test_noise/compute_efficiency/speedup
.venv/bin/python analysis/compute_efficiency.py results/test_noise/flaw_ops/runs --baseline grpo --paired \
  --out results/test_noise/flaw_ops/speedup
