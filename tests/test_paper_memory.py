"""scripts/paper_memory.py: the paper table's jobs through the RL memory check, by hand where it
matters (DeepSeekMath-7B's PPO, as tests/test_memory.py works it out)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("paper_memory", ROOT / "scripts" / "paper_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_paper_job_is_planned_with_its_own_settings():
    pm = load_script()
    rows = pm.plan(80.0, {"gsm8k": 256, "math": 512})
    assert len(rows) == 2 * 6 * 2  # both base models x six methods x both tasks
    by = {(r["base"], r["method"], r["task"]): r for r in rows}
    ppo7 = by["deepseek7b", "ppo", "math"]
    # 6.91e9 parameters over 8 GPUs, ZeRO-2 with Adam on the CPU: 2 + 2/8 B each for the policy and
    # the value network, 2 B for the reference; both models' activations with checkpointing; the
    # logits of 8 sequences x 1,025 tokens x 102,400 x 16 B.
    n = 30 * (4 * 4096**2 + 3 * 4096 * 11008 + 2 * 4096) + 2 * 102_400 * 4096 + 4096
    by_hand = (2 * n * 2.25 + 2 * n + 2 * 8 * 2048 * 4096 * 2 * (30 + 16) + 8 * 1025 * 102_400 * 16) / 2**30
    assert ppo7["processes"] == 8 and ppo7["offload"] and ppo7["gpu_gib"] == pytest.approx(by_hand)
    assert ppo7["logits_gib"] == pytest.approx(8 * 1025 * 102_400 * 16 / 2**30)
    assert not by["deepseek7b", "vineppo", "math"]["offload"] and by["rho1b", "ppo", "gsm8k"]["processes"] == 4
    assert all(r["fits"] for r in rows)
    # DPO+ samples every problem 64 times: its episodes per node dwarf the others'.
    assert by["deepseek7b", "dpo_plus", "math"]["node_episodes_gib"] > 100 * by["deepseek7b", "vineppo", "math"][
        "node_episodes_gib"]
    assert not all(r["fits"] for r in pm.plan(40.0, {"gsm8k": 256, "math": 512}))
    text = pm.table(rows, 80.0)
    assert "| deepseek7b, ppo (Adam on the CPU) (8) | 65.8 | 65.8 | yes |" in text
