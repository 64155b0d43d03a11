"""analysis/value_quality.py on the smoke sweep's PPO run, and the value network read-out."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from vineppo.algorithms.ppo import ValueModel
from vineppo.analysis.value_quality import State, value_net_predictions
from vineppo.models import load_tokenizer

ROOT = Path(__file__).resolve().parents[2]


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "analysis" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_value_net_batched_equals_one_at_a_time(smoke_runs):
    init = str(smoke_runs / "sft-arith" / "final")
    tok = load_tokenizer(init)
    vm = ValueModel(init).eval()
    torch.nn.init.normal_(vm.head.weight, std=0.5)  # a non-trivial head, so positions matter
    states = [State("Question: Ann has 3 pens.\nAnswer:\n", p, {}, 0.0)
              for p in ["", "Ann has 3 pens.\n", "Ann has 3 pens.\nShe buys 12 more: 3 + 12 = 15.\n"]]
    batched = value_net_predictions(vm, tok, states)
    with torch.no_grad():
        alone = []
        for s in states:
            ids = tok(s.prompt + s.prefix, return_tensors="pt", add_special_tokens=False)["input_ids"]
            alone.append(vm.head(vm.backbone(input_ids=ids).last_hidden_state[0, -1]).item())
    assert batched == pytest.approx(alone, abs=1e-5)
    assert len(set(round(x, 6) for x in alone)) == 3


@pytest.mark.slow
def test_value_quality_script_on_smoke_outputs(smoke_runs, tmp_path, monkeypatch):
    from vineppo.inference import HFEngine

    samplers, generate = [], HFEngine.generate
    monkeypatch.setattr(HFEngine, "generate", lambda self, prompts, params: (
        samplers.append((params.temperature, params.top_p)), generate(self, prompts, params))[1])
    script = load_script("value_quality")
    out = tmp_path / "vq"
    rc = script.main([str(smoke_runs / "ppo-arith-s0"), "--out", str(out), "--problems", "3",
                      "--truth-samples", "8", "--ks", "1", "2", "--ranking-states", "2", "--alternatives", "3"])
    assert rc == 0
    assert set(samplers) == {(0.6, 0.9)}  # every sample drawn as the run drew its own (rl.temperature, rl.top_p)
    for f in ("summary.csv", "states.csv", "ranking.csv", "provenance.json", "value_quality.png",
              "value_quality.pdf", "calibration.png", "calibration.pdf"):
        assert (out / f).stat().st_size > 0, f
    summary = pd.read_csv(out / "summary.csv")
    assert sorted(summary["checkpoint"].unique()) == [1, 2]  # every kept checkpoint
    assert sorted(summary["estimator"].unique()) == ["MC K=1", "MC K=2", "value network"]
    states = pd.read_csv(out / "states.csv")
    assert ((states["truth"] * 8).round(9) % 1 == 0).all()  # a mean of 8 rewards in {0, 1}
    assert states["MC K=1"].isin([0.0, 1.0]).all() and ((states["MC K=2"] * 2) % 1 == 0).all()
    # A run without a value network (VinePPO) gives the MC estimates alone; an SFT run is refused.
    vine = tmp_path / "vine"
    assert script.main([str(smoke_runs / "vineppo-arith-s0"), "--out", str(vine), "--problems", "2",
                        "--truth-samples", "4", "--ks", "2", "--ranking-states", "1", "--alternatives", "3"]) == 0
    assert sorted(pd.read_csv(vine / "summary.csv")["estimator"].unique()) == ["MC K=2"]
    assert "value network" not in pd.read_csv(vine / "states.csv").columns
    assert script.main([str(smoke_runs / "sft-arith"), "--out", str(tmp_path / "x")]) == 2
    if not torch.cuda.is_available():  # a GPU asked for where there is none: said in one line
        assert script.main([str(smoke_runs / "ppo-arith-s0"), "--device", "cuda", "--out", str(tmp_path / "x")]) == 2
    assert script.main([str(smoke_runs / "ppo-arith-s0"), "--steps", "regex:(", "--out", str(tmp_path / "x")]) == 2
    assert json.loads((out / "provenance.json").read_text())["args"]["steps"] == "auto"  # the run's rule
    # MAE in the summary is the states' mean absolute error, recomputed by hand.
    for (step, est), mae in summary.set_index(["checkpoint", "estimator"])["mae"].items():
        st = states[states["checkpoint"] == step]
        assert mae == pytest.approx((st[est] - st["truth"]).abs().mean())
    # --replot rebuilds the same summary and the figures from the CSVs alone.
    (out / "value_quality.png").unlink()
    assert script.main(["--replot", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary)
    assert (out / "value_quality.png").stat().st_size > 0
    assert "replotted_at_commit" in json.loads((out / "provenance.json").read_text())
    assert script.main(["--replot", "--out", str(tmp_path / "empty")]) == 2
