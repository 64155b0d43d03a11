# The two set-up commands of the README. Each creates the pinned .venv/ first when it is missing.
PY := .venv/bin/python

.PHONY: env tiny tiny-sft test lint

env:
	@bash scripts/ensure_env.sh

# Main job on the embedded tiny preset: the paper's Table 1 (SFT, then every RL method, 3 seeds,
# on arith and arith_hard), written to results/table1.md. Rerunning it resumes what is unfinished.
tiny: env
	$(PY) experiments/launch.py sweep=table1 $(ARGS)

# SFT + evaluation only, on both tiny tasks (about 11 minutes): runs/tiny_sft.md
tiny-sft: env
	$(PY) -m vineppo.cli tiny $(ARGS)

# The test suite (slow end-to-end tests included; deselect with ARGS='-m "not slow"').
test: env
	$(PY) -m pytest $(ARGS)

lint: env
	.venv/bin/ruff check src tests experiments analysis benchmarks
