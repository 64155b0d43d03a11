"""analysis/test_noise.py on hand-made run folders: bits read from eval/greedy_correct.json (every
evaluation) or eval/test.json (the last), the tables against gap_noise directly, the two-in-a-row
rule, labels, the correct.csv round trip, unfinished runs listed and bad inputs named."""

import json

import numpy as np
import pandas as pd
import pytest

from vineppo.analysis.test_noise import gap_noise
from vineppo.config import make_config, to_yaml

from .test_value_quality_script import load_script

IDS = [f"arith-test-{i}" for i in range(8)]


def fake_run(root, name, algo, seed, evals, extra=(), bits_file=True, finished=True):
    """A run folder as the loop writes it: config.yaml, summary.json, and per-problem bits
    ({iteration: '0110...'}) in eval/greedy_correct.json or, the last only, eval/test.json."""
    d = root / name
    (d / "eval").mkdir(parents=True)
    cfg = make_config([f"rl.algo={algo}", "rl.init=some/sft", f"seed={seed}", *extra])
    (d / "config.yaml").write_text(to_yaml(cfg))
    last = max(evals)
    if finished:
        (d / "summary.json").write_text(json.dumps({"algo": algo, "task": "arith", "seed": seed, "iterations": last,
                                                     "commit": "c0ffee"}))
    if bits_file:
        (d / "eval" / "greedy_correct.json").write_text(json.dumps(
            {"problem_ids": IDS, "iterations": {str(k): v for k, v in evals.items()}}))
    else:
        (d / "eval" / "test.json").write_text(json.dumps({"problems": [
            {"id": i, "greedy_correct": float(c == "1")} for i, c in zip(IDS, evals[last], strict=True)]}))


VINE = {0: {1: "11000000", 2: "11110000"}, 1: {1: "11100000", 2: "11111000"}, 2: {1: "10000000", 2: "11110100"}}
PPO = {0: {1: "10000000", 2: "11000000"}, 1: {1: "11000000", 2: "11100000"}, 2: {1: "00000000", 2: "11010000"}}


def make_sweep(root):
    for s in range(3):
        fake_run(root, f"vineppo-arith-s{s}", "vineppo", s, VINE[s], bits_file=s != 2)  # s2: test.json only
        fake_run(root, f"ppo-arith-s{s}", "ppo", s, PPO[s])
    fake_run(root, "ppo-arith-s9", "ppo", 9, {1: "1" * 8}, finished=False)
    fake_run(root, "ppo_vlr-arith-s0", "ppo", 0, {2: "11111111"}, extra=["rl.value_learning_rate=0.003"])


def matrix(a, b, iteration, seeds):
    return np.array([[int(x) - int(y) for x, y in zip(a[s][iteration], b[s][iteration], strict=True)] for s in seeds])


def test_tables_against_gap_noise_and_the_round_trip(tmp_path):
    tn = load_script("test_noise")
    make_sweep(tmp_path / "runs")
    assert tn.main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    gaps, final = pd.read_csv(out / "gaps.csv"), pd.read_csv(out / "final.csv")
    # Iteration 1: seed 2's VinePPO run kept its last evaluation only, so two seeds are paired.
    at1 = gaps[(gaps["iteration"] == 1) & (gaps["baseline"] == "ppo")].iloc[0]
    want = gap_noise(matrix(VINE, PPO, 1, [0, 1]))
    assert at1["seeds"] == 2 and at1["gap"] == pytest.approx(want["gap"]) == pytest.approx(2 / 16)
    assert at1["se_both"] == pytest.approx(want["se_both"])
    at2 = final[final["baseline"] == "ppo"].iloc[0]
    want = gap_noise(matrix(VINE, PPO, 2, [0, 1, 2]))
    assert at2["seeds"] == 3 and at2["gap"] == pytest.approx(want["gap"]) == pytest.approx(6 / 24)
    assert (at2["acc_method"], at2["acc_baseline"]) == pytest.approx((14 / 24, 8 / 24))
    for key in ("se_seeds", "se_problems", "se_both", "discordant"):
        assert at2[key] == pytest.approx(want[key]), key
    # Unpaired: each method's seed spread of accuracy (VinePPO 4/8, 5/8, 5/8; PPO 2/8, 3/8, 3/8).
    assert at2["se_unpaired"] == pytest.approx(np.sqrt(2 * np.var([4, 5, 5], ddof=1) / 64 / 3))
    # PPO with its value network at its own rate is a method of its own (one seed: no error).
    vlr = final[final["baseline"] == "ppo_vlr0.003"].iloc[0]
    assert vlr["seeds"] == 1 and np.isnan(vlr["se_seeds"]) and not vlr["beyond_2se_seeds"]
    prov = json.loads((out / "provenance.json").read_text())
    # The unfinished run (no summary.json) is listed, not counted.
    assert prov["missing_runs"] == [str(tmp_path / "runs" / "ppo-arith-s9")] and prov["run_commits"] == ["c0ffee"]
    correct = pd.read_csv(out / "correct.csv", dtype={"greedy_correct": str})
    assert "runs/ppo-arith-s9" not in set(correct["run"]) and len(correct) == 2 * 2 + 1 + 2 * 3 + 1
    # From correct.csv alone the same tables come back.
    assert tn.main([str(out / "correct.csv"), "--out", str(tmp_path / "again")]) == 0
    for name in ("gaps.csv", "final.csv", "separation.json"):
        assert (tmp_path / "again" / name).read_text() == (out / name).read_text(), name


def test_two_in_a_row_under_each_error(tmp_path):
    """Six seeds where VinePPO is one problem ahead of PPO in every seed at every evaluation, on a
    different problem each seed: beyond 2 s.e. over seeds (no spread at all), and over problems
    too, at every evaluation, so separated under all three errors."""
    tn = load_script("test_noise")
    root = tmp_path / "runs"
    for s in range(6):
        base = "0" * 8
        ahead = base[:s] + "1" + base[s + 1:]
        fake_run(root, f"vineppo-arith-s{s}", "vineppo", s, {1: ahead, 2: ahead, 3: ahead})
        fake_run(root, f"ppo-arith-s{s}", "ppo", s, {1: base, 2: base, 3: base})
    assert tn.main([str(root), "--out", str(tmp_path / "out")]) == 0
    sep = json.loads((tmp_path / "out" / "separation.json").read_text())["arith: vineppo vs ppo"]
    assert sep["se_seeds"] == {"separated": True, "ahead": 1, "at": [[1, 2], [2, 3]]}
    # The problems: 6 of 8 problems each ahead in one seed of six (gap 1/8): problem means 1/6 on six
    # problems, 0 on two; the spread of those over 8 problems is the error.
    n = gap_noise(np.array([[int(i == s) for i in range(8)] for s in range(6)]))
    assert n["gap"] == pytest.approx(1 / 8) and n["se_seeds"] == 0.0
    assert sep["se_both"]["separated"] == (1 / 8 > 2 * n["se_both"])


def test_bad_inputs(tmp_path, capsys):
    tn = load_script("test_noise")
    assert tn.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "not a folder or a correct.csv" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"x.csv: not a correct.csv \(no column run"):
        tn.main([str(tmp_path / "x.csv"), "--out", str(tmp_path / "o")])
    make_sweep(tmp_path / "runs")
    assert tn.main([str(tmp_path / "runs"), "--method", "grpo", "--out", str(tmp_path / "o")]) == 2
    assert "no runs of grpo (methods there: ppo, ppo_vlr0.003, vineppo)" in capsys.readouterr().err
    bad = tmp_path / "bad" / "vineppo-arith-s0"
    fake_run(tmp_path / "bad", "vineppo-arith-s0", "vineppo", 0, {1: "1" * 8}, bits_file=False)
    (bad / "eval" / "test.json").write_text(json.dumps({"problems": [{"id": "a"}]}))
    with pytest.raises(ValueError, match="test.json: no greedy_correct per problem"):
        tn.main([str(tmp_path / "bad"), "--out", str(tmp_path / "o")])


def test_every_method_against_a_baseline(tmp_path):
    tn = load_script("test_noise")
    make_sweep(tmp_path / "runs")
    assert tn.main([str(tmp_path / "runs"), "--baseline", "ppo", "--out", str(tmp_path / "out")]) == 0
    final = pd.read_csv(tmp_path / "out" / "final.csv")
    assert sorted(zip(final["method"], final["baseline"], strict=True)) == [("ppo_vlr0.003", "ppo"), ("vineppo", "ppo")]
    assert final.set_index("method").loc["vineppo", "gap"] == pytest.approx(6 / 24)
    assert tn.pairs_of(["a", "b"], "a", False, baseline="c") == []
