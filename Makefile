# The two set-up commands of the README. Each creates the pinned .venv/ first when it is missing.
PY := .venv/bin/python

.PHONY: env tiny test lint

env:
	@bash scripts/ensure_env.sh

# Main job on the embedded tiny preset: tokenizer, SFT, evaluation on arith and arith_hard.
tiny: env
	$(PY) -m vineppo.cli tiny $(ARGS)

# The test suite (slow end-to-end tests included; deselect with ARGS='-m "not slow"').
test: env
	$(PY) -m pytest $(ARGS)

lint: env
	.venv/bin/ruff check src tests experiments analysis benchmarks
