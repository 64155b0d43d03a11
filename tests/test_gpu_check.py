"""scripts/gpu_check.sh at its CPU size: every check runs (or says why it is skipped), its numbers
are the runs' own, and everything lands in one folder."""

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_check_at_tiny_scale(tmp_path):
    out = tmp_path / "check"
    env = {**os.environ, "GPU_CHECK_SCALE": "tiny", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(out)], env=env, capture_output=True,
                          text=True, timeout=1500)
    summary = json.loads((out / "summary.json").read_text())
    checks = summary["checks"]
    assert list(checks) == ["env", "tiny", "throughput", "vllm", "deepspeed"], proc.stdout[-2000:]
    assert checks["env"]["status"] == "ok" and checks["env"]["cuda_available"] is False
    tiny = checks["tiny"]
    assert tiny["status"] == "ok", tiny
    assert set(tiny["accuracy"]) == {"sft", "restem", "dpo_plus", "ppo", "vineppo", "grpo", "rloo"}
    for algo, acc in tiny["accuracy"].items():  # the numbers are the runs' own summaries
        run = out / "_runs" / algo / "summary.json"
        assert json.loads(run.read_text())["test_greedy_accuracy"] == acc and 0.0 <= acc <= 1.0
    assert {r["method"] for r in checks["throughput"]["results"]} == {"ppo", "vineppo"}
    if importlib.util.find_spec("vllm") is None:
        assert checks["vllm"]["status"] == "skipped" and "not installed" in checks["vllm"]["reason"]
    if importlib.util.find_spec("deepspeed") is not None:
        assert checks["deepspeed"]["status"] == "ok" and checks["deepspeed"]["bf16"] is False
    failed = [n for n, c in checks.items() if c["status"] == "failed"]
    assert proc.returncode == (1 if failed else 0) and not failed, proc.stdout[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["ok"] is True
    assert {p.name for p in out.iterdir()} >= {"summary.json", "env.log", "tiny.log", "throughput.log"}
