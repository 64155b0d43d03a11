# The two set-up commands of the README. Each creates the pinned .venv/ first when it is missing.
PY := .venv/bin/python

.PHONY: env tiny tiny-sft test test-vllm lint figures

env:
	@bash scripts/ensure_env.sh

# Main job on the embedded tiny preset: the paper's Table 1 (SFT, then every RL method, 3 seeds,
# on arith and arith_hard; 40 minutes on 2 cores), written to results/table1.md. Rerunning it resumes what is unfinished.
tiny: env
	$(PY) experiments/launch.py sweep=table1 $(ARGS)

# SFT + evaluation only, on both tiny tasks one after the other (about 55 minutes): runs/tiny_sft.md
tiny-sft: env
	$(PY) -m vineppo.cli tiny $(ARGS)

# The test suite (slow end-to-end tests included; deselect with ARGS='-m "not slow"'), then the
# vllm engine's tests in their own environment (.venv-vllm/, made when missing; about 3 minutes).
test: env
	$(PY) -m pytest $(ARGS)
	$(MAKE) --no-print-directory test-vllm

test-vllm:
	@bash scripts/ensure_vllm_env.sh
	.venv-vllm/bin/python -m pytest -m vllm tests/test_vllm_engine.py $(ARGS)

# Every figure and table of results/ rebuilt from the run files kept there (about a minute).
figures: env
	@bash scripts/figures.sh

lint: env
	.venv/bin/ruff check src tests experiments analysis benchmarks
