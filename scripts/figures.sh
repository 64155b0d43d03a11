#!/usr/bin/env bash
# Every figure and table of results/ rebuilt from the run files kept there (no training, no models;
# about a minute): bash scripts/figures.sh (or `make figures`). Writes in place under results/;
# tests/analysis/test_reference_results.py checks that the numbers come out as committed.
# Python: $PYTHON, else .venv/bin/python where it exists, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
run() { echo "+ python $*"; "$PY" "$@"; }
run analysis/sft_curve.py results/table1_runs --out results/sft_curve                     # SFT held-out curves
run analysis/compute_efficiency.py results/compute_efficiency/runs --paired --out results/compute_efficiency
run analysis/compute_efficiency.py results/compute_efficiency/runs --tolerance 0.01 --out results/compute_efficiency/tolerance_0.01
run analysis/compute_efficiency.py results/compute_efficiency_hard/runs --out results/compute_efficiency_hard
run analysis/compute_efficiency.py results/rl_free_hard/runs --baseline restem --tolerance 0.01 --out results/rl_free_hard
run analysis/compute_efficiency.py results/rl_free_hard/runs --baseline dpo_plus --tolerance 0.01 --out results/rl_free_hard/dpo_plus
run analysis/compute_efficiency.py results/rl_free_hard/runs --out results/rl_free_hard/ppo
run analysis/shared_errors.py results/rl_free_hard/runs --out results/rl_free_hard/shared_errors
run analysis/compute_efficiency.py results/wall_clock_hard/runs --method vineppo_k9 --out results/wall_clock_hard
run analysis/compute_efficiency.py results/wall_clock_hard/runs --method vineppo_k3 --out results/wall_clock_hard/k3
run analysis/ablations.py results/mc_samples_hard/runs results/compute_efficiency_hard/runs --at-iteration 4 --out results/mc_samples_hard
run analysis/ablations.py results/temperature_hard/runs results/compute_efficiency_hard/runs --at-iteration 4 --out results/temperature_hard
run analysis/ablations.py results/ablations/runs/* --out results/ablations                 # KL, train acc., K, temperature
run analysis/credit_assignment.py dial results/credit_dial/runs --out results/credit_dial
run analysis/credit_assignment.py blame-summary results/credit_blame_*/it*/vlr*           # blame shares from blame.csv
run analysis/credit_assignment.py blame-summary results/value_quality_sampler/blame/*     # the same, MC at the run's top-p or not
run analysis/critic.py results/critic_lr_hard/runs results/value_fit_hard/runs --out results/critic_lr_hard  # value fit: critic by lr, MC
run analysis/compute_efficiency.py results/critic_lr_hard/runs --method ppo_vlr0.0003 --out results/critic_lr_hard/vs_ppo
run analysis/compute_efficiency.py results/critic_lr_hard/runs results/wall_clock_hard/runs/vineppo_k9-* --baseline ppo_vlr0.0003 --out results/critic_lr_hard/vs_vineppo
run analysis/compute_efficiency.py results/critic_lr_hard/runs results/wall_clock_hard/runs/vineppo_k9-* --baseline ppo_vlr0.003 --out results/critic_lr_hard/vs_vineppo_vlr0.003
run analysis/critic.py results/value_clip_hard/runs results/critic_lr_hard/runs --out results/value_clip_hard  # without the value clip
run analysis/compute_efficiency.py results/value_clip_hard/runs results/wall_clock_hard/runs/vineppo_k9-* --baseline ppo_vlr0.0003_noclip --out results/value_clip_hard/vs_vineppo_vlr0.0003
run analysis/compute_efficiency.py results/value_clip_hard/runs results/wall_clock_hard/runs/vineppo_k9-* --baseline ppo_vlr0.003_noclip --out results/value_clip_hard/vs_vineppo_vlr0.003
run analysis/compute_efficiency.py results/grpo_rloo_hard/runs --baseline grpo --out results/grpo_rloo_hard   # VinePPO vs GRPO, RLOO
run analysis/compute_efficiency.py results/grpo_rloo_hard/runs --baseline rloo --out results/grpo_rloo_hard/rloo
run analysis/compute_efficiency.py results/grad_clip_hard/runs results/wall_clock_hard/runs/vineppo_k9-* --out results/grad_clip_hard  # PPO clipped per model
run analysis/compute_efficiency.py results/wall_clock_per_model/runs --method vineppo_k9 --out results/wall_clock_per_model  # timed in one session
run analysis/compute_efficiency.py results/wall_clock_per_model/runs --method vineppo_k3 --out results/wall_clock_per_model/k3
run analysis/critic.py results/critic_lr_per_model/runs results/wall_clock_per_model/runs --out results/critic_lr_per_model  # faster critics, PPO clipped per model
run analysis/compute_efficiency.py results/critic_lr_per_model/runs results/wall_clock_per_model/runs/ppo-* --method ppo_vlr0.0003 --out results/critic_lr_per_model/vs_ppo
run analysis/compute_efficiency.py results/critic_lr_per_model/runs results/wall_clock_per_model/runs/vineppo_k9-* --baseline ppo_vlr0.0003 --out results/critic_lr_per_model/vs_vineppo_vlr0.0003
run analysis/compute_efficiency.py results/critic_lr_per_model/runs results/wall_clock_per_model/runs/vineppo_k9-* --baseline ppo_vlr0.003 --out results/critic_lr_per_model/vs_vineppo_vlr0.003
run analysis/rl_table.py results/table1_ppo_per_model/runs --out results/table1_ppo_per_model   # the table's PPO rows, clipped per model
run analysis/ablations.py results/wall_clock_per_model/runs --at-iteration 4 --kl-at 0.85 --baseline ppo --out results/kl_per_model  # KL at 0.85, PPO per model
run analysis/ablations.py results/temperature_per_model/runs results/temperature_hard/runs/vineppo_* results/wall_clock_per_model/runs/ppo-* results/wall_clock_per_model/runs/vineppo_k9-* --at-iteration 4 --out results/temperature_per_model
run analysis/compute_efficiency.py results/whiten_hard/runs --method vineppo_nowhiten --baseline ppo_nowhiten --out results/whiten_hard  # advantages not whitened
run analysis/compute_efficiency.py results/whiten_hard/runs --method ppo_vlr0.003_nowhiten --baseline ppo_nowhiten --out results/whiten_hard/critic_vlr0.003
run analysis/compute_efficiency.py results/whiten_hard/runs results/wall_clock_per_model/runs/ppo-* --method ppo_nowhiten --baseline ppo --out results/whiten_hard/ppo_vs_whitened
run analysis/compute_efficiency.py results/value_head_hard/runs/normal results/grad_clip_hard/runs --baseline ppo --method ppo_headnormal --paired --out results/value_head_hard  # the authors' value head
run analysis/compute_efficiency.py results/value_head_hard/runs/normal results/wall_clock_per_model/runs/vineppo_k9-* --baseline ppo_headnormal --method vineppo --paired --out results/value_head_hard/vs_vineppo
run analysis/critic.py results/value_head_hard/runs/normal results/grad_clip_hard/runs --out results/value_head_hard/critic
run analysis/critic.py results/whiten_hard/runs results/wall_clock_per_model/runs results/critic_lr_per_model/runs --out results/whiten_hard/critic
run analysis/critic.py results/value_clip_per_model/runs results/critic_lr_per_model/runs --out results/value_clip_per_model  # no value clip, per model
run analysis/compute_efficiency.py results/value_clip_per_model/runs results/wall_clock_per_model/runs/vineppo_k9-* --baseline ppo_vlr0.0003_noclip --out results/value_clip_per_model/vs_vineppo_vlr0.0003
run analysis/compute_efficiency.py results/value_clip_per_model/runs results/wall_clock_per_model/runs/vineppo_k9-* --baseline ppo_vlr0.003_noclip --out results/value_clip_per_model/vs_vineppo_vlr0.003
run analysis/credit_assignment.py dial results/credit_dial_per_model/runs --out results/credit_dial_per_model  # chain length, PPO per model
run analysis/credit_assignment.py dial results/credit_dial_per_model/joint_runs results/credit_dial_per_model/runs/sft-arith results/credit_dial_per_model/runs/vineppo-* --out results/credit_dial_per_model/joint_clip
run analysis/credit_assignment.py dial results/credit_dial_grpo_rloo/runs/grpo-* results/credit_dial_per_model/runs/sft-arith results/credit_dial_per_model/runs/vineppo-* --baseline grpo --out results/credit_dial_grpo_rloo
run analysis/credit_assignment.py dial results/credit_dial_grpo_rloo/runs/rloo-* results/credit_dial_per_model/runs/sft-arith results/credit_dial_per_model/runs/vineppo-* --baseline rloo --out results/credit_dial_grpo_rloo/rloo
run analysis/compute_efficiency.py results/flaw_ops/all/runs --paired --out results/flaw_ops/all  # flaws on every kind of step
run analysis/compute_efficiency.py results/flaw_ops/all/runs --baseline grpo --paired --out results/flaw_ops/all/vs_grpo
run analysis/compute_efficiency.py results/flaw_ops/sub/runs --paired --out results/flaw_ops/sub
run analysis/compute_efficiency.py results/flaw_ops/sub/runs --baseline grpo --paired --out results/flaw_ops/sub/vs_grpo
run analysis/compute_efficiency.py results/flaw_ops/long/runs --baseline grpo --paired --out results/flaw_ops/long  # 20 iterations
run analysis/compute_efficiency.py results/flaw_ops/longer/runs --paired --out results/flaw_ops/longer  # 40 iterations, with PPO
run analysis/compute_efficiency.py results/flaw_ops/longer/runs --baseline grpo --paired --out results/flaw_ops/longer/vs_grpo
run analysis/compute_efficiency.py results/flaw_ops/longer/runs --baseline rloo --paired --out results/flaw_ops/longer/vs_rloo
run analysis/compute_efficiency.py results/flaw_ops/longer/runs --baseline restem --paired --out results/flaw_ops/longer/vs_restem
run analysis/compute_efficiency.py results/flaw_ops/longer/runs --baseline dpo_plus --paired --out results/flaw_ops/longer/vs_dpo_plus
run analysis/rl_table.py results/flaw_ops/longer/runs --out results/flaw_ops/longer/table
run analysis/ablations.py results/flaw_ops/longer/runs --kl-at 0.7 0.8 0.85 0.9 --train-at 0.4 0.5 0.6 0.7 0.8 0.85 --baseline ppo --out results/flaw_ops/longer/kl_generalisation  # claim 5, 20 seeds
run analysis/ablations.py results/flaw_ops/longer/runs --kl-at 0.7 0.8 0.85 0.9 --train-at 0.4 0.5 0.6 0.7 0.8 0.85 --baseline vineppo_k9 --out results/flaw_ops/longer/kl_generalisation/vs_vineppo
run analysis/ablations.py results/flaw_ops/longer/k/runs results/flaw_ops/longer/runs/vineppo-arith-s[0-5] results/flaw_ops/longer/runs/ppo-arith-s[0-5] --at-iteration 30 --kl-at 0.8 0.85 --train-at 0.5 0.6 0.7 0.8 --baseline ppo --out results/flaw_ops/longer/k  # K = 3, 9, 27
run analysis/compute_efficiency.py results/flaw_ops/longer/k/runs results/flaw_ops/longer/runs/vineppo-arith-s[0-5] results/flaw_ops/longer/runs/ppo-arith-s[0-5] --method vineppo_k3 --baseline vineppo_k9 --paired --out results/flaw_ops/longer/k/k3_vs_k9
run analysis/compute_efficiency.py results/flaw_ops/longer/k/runs results/flaw_ops/longer/runs/vineppo-arith-s[0-5] results/flaw_ops/longer/runs/ppo-arith-s[0-5] --method vineppo_k27 --baseline vineppo_k9 --paired --out results/flaw_ops/longer/k/k27_vs_k9
run analysis/compute_efficiency.py results/flaw_ops/longer/critic/runs results/flaw_ops/longer/runs/vineppo-arith-s* results/flaw_ops/longer/runs/ppo-arith-s* --baseline ppo_vlr0.003 --paired --out results/flaw_ops/longer/critic/vs_vineppo  # PPO, critic at 3e-3
run analysis/compute_efficiency.py results/flaw_ops/longer/critic/runs results/flaw_ops/longer/runs/vineppo-arith-s* results/flaw_ops/longer/runs/ppo-arith-s* --method ppo_vlr0.003 --paired --out results/flaw_ops/longer/critic/vs_ppo
run analysis/critic.py results/flaw_ops/longer/critic/runs results/flaw_ops/longer/runs/vineppo-arith-s* results/flaw_ops/longer/runs/ppo-arith-s* --out results/flaw_ops/longer/critic/critic
run analysis/error_anatomy.py results/flaw_ops/longer/errors_final --replot --out results/flaw_ops/longer/errors_final
run analysis/kl_exact.py results/flaw_ops/longer/kl_exact --replot --out results/flaw_ops/longer/kl_exact  # logged vs exact KL, from kl.csv
run analysis/kl_exact.py results/flaw_ops/longer/kl_exact/wide/ppo --replot --out results/flaw_ops/longer/kl_exact/wide/ppo
run analysis/kl_exact.py results/flaw_ops/longer/kl_exact/wide/vineppo --replot --out results/flaw_ops/longer/kl_exact/wide/vineppo
run analysis/error_anatomy.py results/flaw_ops/longer/kl_exact/errors --replot --out results/flaw_ops/longer/kl_exact/errors  # from errors.csv
run analysis/compute_efficiency.py results/flaw_ops/longer/steps/runs/vineppo_auto-* results/flaw_ops/longer/steps/runs/vineppo_response-* --baseline vineppo --method vineppo_response --paired --out results/flaw_ops/longer/steps/vs_response  # where steps end
run analysis/compute_efficiency.py results/flaw_ops/longer/steps/runs/vineppo_auto-* results/flaw_ops/longer/steps/runs/vineppo_operand-* --baseline vineppo --method vineppo_regex3170db --paired --out results/flaw_ops/longer/steps/vs_regex3170db
run analysis/compute_efficiency.py results/flaw_ops/longer/steps/runs/vineppo_response-* results/flaw_ops/longer/runs/grpo-arith-s[0-5] --baseline grpo --method vineppo_response --paired --out results/flaw_ops/longer/steps/response_vs_grpo
run analysis/error_anatomy.py results/flaw_ops/longer/steps/errors --replot --out results/flaw_ops/longer/steps/errors
run analysis/compute_efficiency.py results/flaw_ops/longer/steps/answer/runs/vineppo_lines_answer-* results/flaw_ops/longer/steps/runs/vineppo_auto-* --baseline vineppo --method vineppo_lines_answer --paired --out results/flaw_ops/longer/steps/answer  # the authors' GSM8K steps
run analysis/compute_efficiency.py results/flaw_ops/longer/steps/runs/vineppo_response-* results/flaw_ops/longer/runs/rloo-arith-s[0-5] --baseline rloo --method vineppo_response --paired --out results/flaw_ops/longer/steps/response_vs_rloo
run analysis/compute_efficiency.py results/flaw_ops/longer/runs/grpo-arith-* results/flaw_ops/longer/runs/rloo-arith-* --baseline rloo --method grpo --paired --out results/flaw_ops/longer/steps/grpo_vs_rloo
run analysis/copy_stutter.py results/flaw_ops/longer/steps/stutter --replot --out results/flaw_ops/longer/steps/stutter  # from stutter.csv
run analysis/copy_stutter.py results/flaw_ops/longer/steps/stutter_methods --replot --out results/flaw_ops/longer/steps/stutter_methods
run analysis/copy_stutter.py results/flaw_ops/longer/steps/no_add_flaw/stutter --replot --out results/flaw_ops/longer/steps/no_add_flaw/stutter
run analysis/error_anatomy.py results/flaw_ops/longer/steps/no_add_flaw/errors --replot --out results/flaw_ops/longer/steps/no_add_flaw/errors
run analysis/compute_efficiency.py results/flaw_ops/longer/steps/no_add_flaw/runs/vineppo-* results/flaw_ops/longer/steps/no_add_flaw/runs/grpo-* --baseline grpo --paired --out results/flaw_ops/longer/steps/no_add_flaw/vs_grpo
run analysis/value_quality.py --replot --out results/value_quality                          # from its states.csv
run analysis/value_quality.py --replot --out results/earlier_preset/value_quality
run analysis/test_noise.py results/test_noise/compute_efficiency/runs --out results/test_noise/compute_efficiency  # test-set noise
run analysis/test_noise.py results/test_noise/flaw_ops/runs --out results/test_noise/flaw_ops
run analysis/compute_efficiency.py results/test_noise/compute_efficiency/runs --paired --out results/test_noise/compute_efficiency/speedup
run analysis/compute_efficiency.py results/test_noise/flaw_ops/runs --baseline grpo --paired --out results/test_noise/flaw_ops/speedup
run analysis/test_noise.py results/test_noise/wall_clock_per_model/runs --baseline ppo --out results/test_noise/wall_clock_per_model
run analysis/compute_efficiency.py results/test_noise/wall_clock_per_model/runs --method vineppo_k9 --paired --out results/test_noise/wall_clock_per_model/speedup
run analysis/compute_efficiency.py results/test_noise/wall_clock_per_model/runs --method vineppo_k3 --paired --out results/test_noise/wall_clock_per_model/speedup_k3
run analysis/test_noise.py results/test_noise/final/table1/correct.csv --all-pairs --out results/test_noise/final/table1
run analysis/test_noise.py results/test_noise/final/flaw_ops_longer/correct.csv --all-pairs --out results/test_noise/final/flaw_ops_longer
run analysis/test_noise.py results/test_noise/final/grpo_rloo_hard/correct.csv --all-pairs --out results/test_noise/final/grpo_rloo_hard
run analysis/test_noise.py results/test_noise/final/wall_clock_per_model/correct.csv --all-pairs --out results/test_noise/final/wall_clock_per_model
for d in results/value_quality_vlr/vlr*/ results/value_quality_vlr/vlr*/step4/ results/value_quality_per_model/vlr*/ \
         results/value_quality_per_model/vlr*/step4/ results/value_quality_sampler/*/step*/; do  # the same with PPO's value lr (joint clip, then per model); sampled at the run's top-p or not
  run analysis/value_quality.py --replot --out "${d%/}"
done
echo "rebuilt results/ figures and tables; the main table per run: python analysis/rl_table.py results/table1_runs --out results/rl_table"
