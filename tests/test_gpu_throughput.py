"""benchmarks/gpu_throughput.py: its FLOP count by hand, and a run at the tiny scale whose printed
numbers follow from the run's own metrics."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_throughput as bench  # noqa: E402


def test_iteration_flops_by_hand():
    # 1e9 parameters; 100 generated tokens -> 2e11; old + ref passes over 300 tokens -> 2 x 6e11;
    # 2 epochs of forward + backward (3 forwards) over 300 tokens -> 6 x 6e11.
    assert bench.iteration_flops("grpo", 10**9, 100, 300, 2) == 2e11 + 2 * 6e11 + 6 * 6e11
    # PPO: + the value network's GAE pass (6e11) and its 2 epochs of forward + backward (6 x 6e11).
    assert bench.iteration_flops("ppo", 10**9, 100, 300, 2) == 2e11 + 2 * 6e11 + 6 * 6e11 + 6e11 + 6 * 6e11
    # VinePPO: its MC tokens are sampled like any other.
    assert bench.iteration_flops("vineppo", 10**9, 100, 300, 2, mc_tokens=50) == 3e11 + 2 * 6e11 + 6 * 6e11
    assert bench.peak_flops("NVIDIA H100 80GB HBM3", None) == 989e12
    assert bench.peak_flops("NVIDIA A100-SXM4-80GB", None) == 312e12
    assert bench.peak_flops("some cpu", None) is None and bench.peak_flops("x", 100.0) == 1e14


def test_rho_1b_architecture_has_its_size():
    """RhoMath-1.1B (TinyLlama's architecture) has 1.10B parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**bench.RHO_1B, tie_word_embeddings=False))
    assert sum(p.numel() for p in model.parameters()) == 1_100_048_384


@pytest.mark.slow
def test_tiny_scale_run_reports_consistent_numbers():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--scale", "tiny",
                          "--iterations", "2", "--prompts", "4", "--samples", "2", "--minibatch", "4",
                          "--max-new-tokens", "24", "--k", "2", "--device", "cpu", "--peak-tflops", "1"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["scale"] == "tiny" and result["dtype"] == "float32"
    by = {r["method"]: r for r in result["results"]}
    assert set(by) == {"ppo", "vineppo"}
    for r in by.values():
        assert r["generation_tokens_per_s"] > 0 and r["training_tokens_per_s"] > 0
        assert r["mfu"] == pytest.approx(r["model_tflops_per_s"] / 1.0, abs=1e-3)  # peak given as 1 TFLOP/s
    assert by["vineppo"]["mc_tokens_per_s"] > 0 and by["ppo"]["mc_tokens_per_s"] is None
    # The memory estimate beside each method (PPO's adds its value network); no GPU, no peak.
    assert by["ppo"]["memory_estimate_gib"] > by["vineppo"]["memory_estimate_gib"] > 0
    assert by["ppo"]["memory_peak_gib"] is None and by["vineppo"]["memory_peak_gib"] is None
