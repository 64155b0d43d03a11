"""analysis/copy_stutter.py on the smoke sweep's runs (every checkpoint kept)."""

import pandas as pd
import pytest

from tests.analysis.test_value_quality_script import load_script

NEXT = ["right", "flaw", "other_op", "digit", "other"]


@pytest.mark.slow
def test_copy_stutter_script_on_smoke_outputs(smoke_runs, tmp_path):
    script = load_script("copy_stutter")
    out = tmp_path / "stutter"
    assert script.main([str(smoke_runs), "--out", str(out), "--problems", "8"]) == 0
    for f in ("stutter.csv", "table.csv", "provenance.json", "copy_stutter.png", "copy_stutter.pdf"):
        assert (out / f).stat().st_size > 0, f
    rows = pd.read_csv(out / "stutter.csv")
    assert sorted(rows["method"].unique()) == ["ppo", "vineppo"]
    assert sorted(rows["iteration"].unique()) == [0, 1, 2]  # the SFT start and each kept checkpoint
    assert (rows[[f"mass_{k}" for k in NEXT]].sum(axis=1) - 1).abs().max() < 1e-5  # the classes add up
    assert (rows[[f"greedy_{k}" for k in NEXT]].sum(axis=1) - 1).abs().max() < 1e-9
    # The digit mass is the states' mean: the flawed states' and the others' weighted by their counts.
    n = rows["states"]
    split = (rows["flawed_states"] * rows["digit_flawed_states"].fillna(0)
             + (n - rows["flawed_states"]) * rows["digit_other_states"].fillna(0)) / n
    assert (split - rows["mass_digit"]).abs().max() < 1e-9
    starts = rows[rows["iteration"] == 0]  # both runs start from one SFT model and read the same states
    assert starts[[f"mass_{k}" for k in NEXT] + ["states", "flawed_states"]].nunique().max() == 1
    assert starts["rank_corr_flaw_digit"].isna().all()  # no gain at the start itself
    assert rows["digit_share_of_rest"].between(0, 1).all()
    table = pd.read_csv(out / "table.csv")
    assert set(table["seeds"]) == {1}
    assert script.main([str(out), "--out", str(tmp_path / "again"), "--replot"]) == 0
    assert pd.read_csv(tmp_path / "again" / "table.csv").equals(table)
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "e2"), "--every", "2", "--problems", "4"]) == 0
    assert sorted(pd.read_csv(tmp_path / "e2" / "stutter.csv")["iteration"].unique()) == [0, 2]
    assert script.main([str(smoke_runs / "sft-arith"), "--out", str(tmp_path / "x")]) == 2  # no RL runs
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "x"), "--every", "0"]) == 2
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "x"), "--problems", "0"]) == 2
    assert script.main([str(tmp_path), "--out", str(tmp_path / "r"), "--replot"]) == 2  # no CSV there
