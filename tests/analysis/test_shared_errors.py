"""analysis/shared_errors.py on hand-made run folders whose wrong-problem sets are known."""

import json

import pandas as pd
import pytest

from .test_value_quality_script import load_script


def make_run(root, name, algo, seed, wrong, kinds=None, problems=10, prefix="p"):
    d = root / name
    (d / "eval").mkdir(parents=True)
    (d / "config.yaml").write_text("seed: 0\n")
    (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": seed}))
    kinds = kinds or {}
    rows = [{"id": f"{prefix}{i}", "greedy_correct": i not in wrong,
             "first_error_kind": kinds.get(i, "other") if i in wrong else "none"} for i in range(problems)]
    (d / "eval" / "test.json").write_text(json.dumps({"problems": rows}))
    return d


def test_overlaps_hand_worked(tmp_path):
    se = load_script("shared_errors")
    make_run(tmp_path, "a-s0", "ppo", 0, {0, 1, 2, 3}, kinds={0: "flaw", 3: None})
    make_run(tmp_path, "a-s1", "ppo", 1, {0, 1})
    make_run(tmp_path, "b-s0", "vineppo", 0, {2, 3})
    (tmp_path / "sft").mkdir()  # not an RL run: no "algo" in its summary
    (tmp_path / "sft" / "config.yaml").write_text("seed: 0\n")
    (tmp_path / "sft" / "summary.json").write_text("{}")
    make_run(tmp_path, "c-s0", "grpo", 0, set()).joinpath("eval", "test.json").unlink()  # no evaluation
    out = tmp_path / "out"
    assert se.main([str(tmp_path), "--out", str(out)]) == 0
    errors = pd.read_csv(out / "errors.csv").set_index("run")
    assert errors.loc["a-s0", ["wrong", "wrong_at_flaw", "wrong_elsewhere", "wrong_not_located"]].tolist() == [4, 1, 2, 1]
    assert errors.loc["a-s1", "greedy_accuracy"] == pytest.approx(0.8)
    pairs = pd.read_csv(out / "overlap.csv").set_index(["run_a", "run_b"])
    # {0,1,2,3} vs {0,1}: 2 / 4; vs {2,3}: 2 / 4; {0,1} vs {2,3}: 0 / 4.
    assert pairs.loc[("a-s0", "a-s1"), "jaccard"] == pytest.approx(0.5)
    assert pairs.loc[("a-s1", "b-s0"), "jaccard"] == pytest.approx(0.0)
    # Independent errors at rates 0.4 and 0.2: 0.08 / (0.6 - 0.08).
    assert pairs.loc[("a-s0", "a-s1"), "jaccard_if_independent"] == pytest.approx(0.08 / 0.52)
    table = pd.read_csv(out / "pairs.csv").set_index(["method_a", "method_b"])
    assert table.loc[("ppo", "ppo"), "jaccard"] == pytest.approx(0.5)
    assert table.loc[("ppo", "vineppo"), "jaccard"] == pytest.approx(0.25)  # mean of 0.5 and 0.0
    assert table.loc[("ppo", "vineppo"), "pairs"] == 2
    assert json.loads((out / "provenance.json").read_text())["missing"] == ["c-s0", "sft"]
    assert (out / "shared_errors.png").stat().st_size > 0


def test_refuses_what_it_cannot_compare(tmp_path, capsys):
    se = load_script("shared_errors")
    make_run(tmp_path / "one", "a-s0", "ppo", 0, {0})
    assert se.main([str(tmp_path / "one"), "--out", str(tmp_path / "o1")]) == 2
    assert "fewer than two" in capsys.readouterr().err
    make_run(tmp_path / "two", "a-s0", "ppo", 0, {0})
    make_run(tmp_path / "two", "b-s0", "vineppo", 0, {0}, problems=12)
    assert se.main([str(tmp_path / "two"), "--out", str(tmp_path / "o2")]) == 2
    assert "different test sets" in capsys.readouterr().err and not (tmp_path / "o2").exists()
    make_run(tmp_path / "three", "a-s0", "ppo", 0, {0})
    make_run(tmp_path / "three", "b-s0", "vineppo", 0, {0}, prefix="q")  # as many problems, other ones
    assert se.main([str(tmp_path / "three"), "--out", str(tmp_path / "o3")]) == 2
    assert "20 ids in one only" in capsys.readouterr().err
