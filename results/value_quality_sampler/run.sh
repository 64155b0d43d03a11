#!/usr/bin/env bash
# Claims 3 and 4 with every sample drawn as the run drew its own. Before commit 74592d8,
# analysis/value_quality.py sampled its states, alternative next steps, MC estimates and ground
# truth at top-p 1.0, while the PPO runs it reads trained at rl.top_p 0.9 (the value network learns
# the returns of that sampler, and VinePPO estimates with it). This reruns
# value_quality_per_model/'s arm at the paper's single rate (value network at the policy's 3e-5,
# PPO clipped per model, seed 0, on `make tiny`'s arith SFT model) to iteration 4, and analyses its
# iteration-2 and -4 checkpoints with value_quality_per_model/'s arguments twice: with this commit's
# script (`fixed/`) and with the script and package of commit BEFORE (`before/`, taken from git),
# so the two differ by the sampler alone. Two jobs at a time, one thread each.
# From the repository root (`make tiny`, or its arith SFT run, first):
#   bash results/value_quality_sampler/run.sh
set -euo pipefail
export OMP_NUM_THREADS=1
BEFORE=${BEFORE:-afb6670}
init=runs/table1/sft-arith/final
[ -d "$init" ] || { echo "missing $init: run \`make tiny\` first" >&2; exit 1; }
runs=runs/value_quality_sampler name=ppo-arith-s0 out=results/value_quality_sampler
mkdir -p $runs
PYTHONPATH="$PWD/src" .venv/bin/vineppo rl preset=tiny rl.init=$init task.name=arith seed=0 num_threads=1 \
  rl.algo=ppo rl.iterations=4 rl.eval_every=2 rl.save_every=2 rl.keep_checkpoints=0 \
  rl.grad_clip_scope=per_model output_dir=$runs run_name=$name > $runs/$name.log 2>&1
old=$runs/code-$BEFORE
rm -rf $old && mkdir -p $old && git archive "$BEFORE" src analysis | tar -x -C $old
job() {  # code (fixed | before), checkpoint
  code=$1 c=$2 dest=$out/$1/step$2
  if [ "$code" = fixed ]; then root=$PWD; else root=$PWD/$old; fi
  PYTHONPATH="$root/src" .venv/bin/python "$root/analysis/value_quality.py" $runs/$name --checkpoints $c \
    --problems 192 --truth-samples 64 --ranking-states 650 --alternatives 4 --out $dest > $runs/$code$c.log 2>&1
  [ "$code" = fixed ] || .venv/bin/python - "$dest/provenance.json" "$BEFORE" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))  # the script's commit: the code that ran is BEFORE's, from git
json.dump({**p, "code_commit": sys.argv[2], "note": "script and package of code_commit (git archive)"},
          open(sys.argv[1], "w"), indent=2)
PY
}
export -f job
export runs name out old BEFORE
printf '%s\n' "fixed 2" "before 2" "fixed 4" "before 4" | xargs -P 2 -L 1 bash -c 'job "$@"' _
# The same for credit_blame/'s measurement (analysis/credit_assignment.py blame: 500 held-out
# problems, one sampled response each at the run's top-p, K = 9 MC continuations per state, which
# were drawn at top-p 1.0 before) at the iteration-2 checkpoint.
bjob() {  # code (fixed | before)
  code=$1 dest=$out/blame/$1
  if [ "$code" = fixed ]; then root=$PWD; else root=$PWD/$old; fi
  PYTHONPATH="$root/src" .venv/bin/python "$root/analysis/credit_assignment.py" blame $runs/$name --checkpoint 2 \
    --problems 500 --k 9 --out $dest > $runs/blame-$code.log 2>&1
  [ "$code" = fixed ] || .venv/bin/python - "$dest/provenance.json" "$BEFORE" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
json.dump({**p, "code_commit": sys.argv[2], "note": "script and package of code_commit (git archive)"},
          open(sys.argv[1], "w"), indent=2)
PY
}
export -f bjob
printf '%s\n' fixed before | xargs -P 2 -L 1 bash -c 'bjob "$@"' _
mkdir -p $out/run
cp $runs/$name/config.yaml $runs/$name/metrics.jsonl $runs/$name/summary.json $out/run/
