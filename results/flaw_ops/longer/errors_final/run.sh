#!/usr/bin/env bash
# What the greedy test answers of longer/'s 120 runs (6 methods x 20 seeds) get wrong at the end
# (iteration 40): the kind of each answer's first wrong step and the slips within its lines, read
# from the answers each run kept of its last evaluation (eval/test.json; no model runs). The same
# along training, from checkpoints, is in kl_exact/errors/.
# From the repository root, after results/flaw_ops/longer/run.sh:
#   bash results/flaw_ops/longer/errors_final/run.sh
set -euo pipefail
export PYTHONPATH="$PWD/src" OMP_NUM_THREADS=1
.venv/bin/python analysis/error_anatomy.py runs/flaw_ops_longer --final-only --out results/flaw_ops/longer/errors_final
