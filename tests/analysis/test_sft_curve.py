"""analysis/sft_curve.py: the SFT start's held-out curve from a fabricated run folder."""

import json

import pandas as pd
import pytest

from vineppo.config import make_config, to_yaml
from vineppo.runio import append_jsonl

from .test_value_quality_script import load_script


def test_curve_rows_and_final_point(tmp_path):
    sc = load_script("sft_curve")
    d = tmp_path / "sft-arith"
    d.mkdir()
    (d / "config.yaml").write_text(to_yaml(make_config(["task.name=arith"])))
    append_jsonl(d / "metrics.jsonl", {"step": 25, "train/loss": 1.0})
    for step, acc, flawed in ((250, 0.1, 0.05), (500, 0.4, 0.5)):
        append_jsonl(d / "metrics.jsonl", {"step": step, "eval/greedy_accuracy": acc, "eval/greedy_flawed": flawed,
                                           "eval/greedy_unparsed": 0.0, "eval/num_problems": 200})
    (d / "summary.json").write_text(json.dumps({"task": "arith", "train_steps": 750, "num_test": 500,
                                                "test_greedy_accuracy": 0.42, "test_greedy_flawed": 0.57,
                                                "test_greedy_unparsed": 0.0}))
    rl = tmp_path / "ppo-arith-s0"  # an RL run is left out
    rl.mkdir()
    (rl / "config.yaml").write_text(to_yaml(make_config(["task.name=arith"])))
    (rl / "summary.json").write_text(json.dumps({"algo": "ppo"}))
    out = tmp_path / "out"
    assert sc.main([str(tmp_path), "--out", str(out)]) == 0
    df = pd.read_csv(out / "curve.csv")
    assert df["step"].tolist() == [250, 500, 750] and df["greedy_accuracy"].tolist() == [0.1, 0.4, 0.42]
    assert df["right_but_for_the_flaw"].tolist() == pytest.approx([0.15, 0.9, 0.99])
    assert df["problems"].tolist() == [200, 200, 500] and (out / "sft_curve.png").exists()
    assert sc.main([str(rl), "--out", str(out)]) == 2
