#!/usr/bin/env bash
# On flaw_ops every method's logged KL to the reference (train/kl_ref, longer/) rises to ~0.09 nats
# per token around iteration 30 and then falls while accuracy keeps rising. Is that the estimator
# (one sample per token, drawn top-p from the tempered policy) or the policy itself coming back
# toward the reference, and is it the KL penalty (rl.kl_coef = 1e-4) that brings it back? And what
# in the policy moves? From flaw_ops/all's SFT model with longer/'s settings (the same numbers as
# longer/'s runs of those seeds: keeping checkpoints changes nothing), every second checkpoint kept,
# two jobs at a time, one thread each: PPO and VinePPO at the default KL coefficient and at 0, seeds
# 0-3; GRPO at the default, seeds 0-3; PPO and VinePPO at the default, seeds 4-5. Then, at every
# fourth checkpoint, analysis/kl_exact.py on every run (32 fixed training problems x 4 samples: the
# exact KL beside the logged estimate, at the policy's samples and at the reference's) and
# analysis/error_anatomy.py on the default-coefficient runs (the kind of each greedy test answer's
# first wrong step, the slips within its lines, and arithmetic and copying on fixed inputs).
# From the repository root, after results/flaw_ops/run.sh:
#   bash results/flaw_ops/longer/kl_exact/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
init=runs/flaw_ops_all/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run results/flaw_ops/run.sh first" >&2; exit 1; }
mkdir -p runs/flaw_ops_kl
job() {  # algo kl_coef seed
  .venv/bin/vineppo rl preset=tiny task.name=arith 'task.flaw_ops=[add,sub,mul,div]' num_threads=1 \
    rl.iterations=40 rl.eval_every=2 rl.algo=$1 rl.kl_coef=$2 seed=$3 rl.init=$init rl.save_every=2 \
    rl.keep_checkpoints=0 output_dir=runs/flaw_ops_kl run_name=$1_kl$2-arith-s$3 \
    >> runs/flaw_ops_kl/$1_kl$2-arith-s$3.log 2>&1
}
export -f job
export init
{ for s in 0 1 2 3; do for c in 1e-4 0; do for a in ppo vineppo; do echo "$a $c $s"; done; done; done
  for s in 0 1 2 3; do echo "grpo 1e-4 $s"; done
  for s in 4 5; do for a in ppo vineppo; do echo "$a 1e-4 $s"; done; done; } |
  while read -r a c s; do [ -f runs/flaw_ops_kl/${a}_kl$c-arith-s$s/summary.json ] || echo "$a $c $s"; done |
  xargs -r -P 2 -L 1 bash -c 'job "$@"' _
out=results/flaw_ops/longer/kl_exact
for d in runs/flaw_ops_kl/*/; do  # the run files (no checkpoints)
  mkdir -p "$out/runs/$(basename "$d")"
  cp "$d"/config.yaml "$d"/metrics.jsonl "$d"/summary.json "$out/runs/$(basename "$d")/"
done
.venv/bin/python analysis/kl_exact.py runs/flaw_ops_kl --every 4 --problems 32 --out $out > runs/flaw_ops_kl/kl_exact.log 2>&1 &
kl=$!
.venv/bin/python analysis/error_anatomy.py runs/flaw_ops_kl/*_kl1e-4-arith-s*/ --every 4 --out $out/errors > runs/flaw_ops_kl/errors.log 2>&1 &
errors=$!
wait $kl
wait $errors
# wide/: the own-samples KL on 256 problems x 2 samples (32 problems are few for a per-prompt
# quantity with a heavy tail), PPO and VinePPO seeds 0-1.
for a in ppo vineppo; do
  .venv/bin/python analysis/kl_exact.py runs/flaw_ops_kl/${a}_kl1e-4-arith-s0 runs/flaw_ops_kl/${a}_kl1e-4-arith-s1 \
    --every 4 --problems 256 --samples 2 --out $out/wide/$a > runs/flaw_ops_kl/kl_wide_$a.log 2>&1 &
done
wait
