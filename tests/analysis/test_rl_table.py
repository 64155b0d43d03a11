"""analysis/rl_table.py: mean ± std over seeds from run folders; unfinished runs are listed."""

import importlib.util
import json
from pathlib import Path

from vineppo.runio import append_jsonl

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("rl_table", ROOT / "analysis" / "rl_table.py")
rl_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rl_table)


def fake_run(root, algo, seed, acc, iters=2):
    d = root / f"{algo}-arith-s{seed}"
    d.mkdir(parents=True)
    for i in range(iters):
        append_jsonl(d / "metrics.jsonl", {"iteration": i + 1, "train/reward": 0.5, "time/generation_s": 1.0,
                                           "time/value_estimation_s": 2.0 * (algo == "vineppo"),
                                           "time/training_s": 3.0})
    (d / "summary.json").write_text(json.dumps({
        "algo": algo, "task": "arith", "seed": seed, "iterations": iters, "grad_steps": 8,
        "test_greedy_accuracy": acc, "seconds_per_iteration": 6.0, "commit": "abc"}))


def test_table_mean_std_and_missing(tmp_path):
    runs = tmp_path / "runs"
    for seed, acc in enumerate([0.2, 0.4, 0.6]):
        fake_run(runs, "vineppo", seed, acc)
    fake_run(runs, "ppo", 0, 0.3)
    (runs / "grpo-arith-s0").mkdir()  # started, never finished
    (runs / "sft-arith-s0").mkdir()  # SFT folders are not RL runs
    assert rl_table.main([str(runs), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| vineppo | arith | 3 | 0.400 ± 0.200 |" in table  # std of 0.2, 0.4, 0.6 is 0.2
    assert "| ppo | arith | 1 | 0.300 ± 0.000 |" in table
    assert "Missing or unfinished runs: grpo-arith-s0" in table
    assert table.index("| ppo |") < table.index("| vineppo |")
    csv = (tmp_path / "out" / "table.csv").read_text().splitlines()
    assert len(csv) == 1 + 4


def test_empty_folder_is_an_error(tmp_path, capsys):
    assert rl_table.main([str(tmp_path)]) == 2
    assert "no finished RL runs" in capsys.readouterr().err
