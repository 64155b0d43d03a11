"""benchmarks/vs_trl.py gives TRL the same budget as our loop: the same episodes per iteration,
the same optimizer steps per iteration, the same sampling and loss settings."""

import argparse
import importlib.util
from pathlib import Path

import pytest

from vineppo.config import make_config

pytest.importorskip("trl")

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("vs_trl", ROOT / "benchmarks" / "vs_trl.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_trl_gets_our_budget(algo, tmp_path):
    bench = load_bench()
    args = argparse.Namespace(init="some/sft", task="arith", iterations=10, threads=2, seed=0)
    s = bench.settings(args)
    c = bench.trl_config(algo, args, s, str(tmp_path))
    rl = make_config(["preset=tiny"]).rl
    # One generation batch per iteration: 32 prompts x 8 samples = 256 completions.
    assert c.generation_batch_size == rl.prompts_per_iter * rl.samples_per_prompt == 256
    assert c.num_generations == rl.samples_per_prompt
    # Optimizer steps per iteration: 256 episodes x 2 epochs / mini-batches of 64 = 8, as in our loop.
    assert c.steps_per_generation * c.num_iterations == bench.ITER_STEPS == 8
    assert c.max_steps == 8 * 10 and c.gradient_accumulation_steps == 1
    assert (c.learning_rate, c.beta, c.epsilon) == (rl.learning_rate, rl.kl_coef, rl.clip)
    # Neither side recomputes activations (TRL's GRPO / RLOO default to checkpointing).
    assert c.gradient_checkpointing is False
    assert (c.temperature, c.top_p, c.max_completion_length) == (rl.temperature, rl.top_p, rl.max_new_tokens)
    assert c.lr_scheduler_type == "constant" and c.max_grad_norm == rl.grad_clip and not c.bf16


def test_rows_pool_the_seeds_and_leave_out_warm_up():
    bench = load_bench()
    outs = [{"per_iter": [9.0, 1.0, 3.0], "tokens": [90, 10, 30], "acc": 0.5, "peak_rss_mb": 10.0},
            {"per_iter": [9.0, 2.0, 4.0], "tokens": [90, 20, 40], "acc": 0.7, "peak_rss_mb": 12.0}]
    r = bench.summarise("ours", "grpo", outs)
    assert (r["median_s"], r["min_s"], r["max_s"]) == (2.5, 1.0, 4.0)  # the 9 s warm-ups are out
    assert r["tokens_per_s"] == 100 / 10 and r["peak_rss_mb"] == 12.0 and r["seeds"] == 2
    assert r["acc"] == pytest.approx(0.6) and r["acc_sd"] == pytest.approx(0.1414, abs=1e-4)
