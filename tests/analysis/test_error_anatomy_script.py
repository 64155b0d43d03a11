"""analysis/error_anatomy.py on the smoke sweep's runs (every checkpoint kept)."""

import json

import pandas as pd
import pytest

from tests.analysis.test_value_quality_script import load_script


@pytest.mark.slow
def test_error_anatomy_script_on_smoke_outputs(smoke_runs, tmp_path):
    script = load_script("error_anatomy")
    out = tmp_path / "errors"
    assert script.main([str(smoke_runs), "--out", str(out)]) == 0
    for f in ("errors.csv", "table.csv", "provenance.json", "error_anatomy.png", "error_anatomy.pdf"):
        assert (out / f).stat().st_size > 0, f
    rows = pd.read_csv(out / "errors.csv")
    assert sorted(rows["method"].unique()) == ["ppo", "vineppo"]
    assert sorted(rows["iteration"].unique()) == [0, 1, 2]  # the SFT start and each kept checkpoint
    kinds = ["none", "flaw", "copy", "operation", "operand", "arithmetic", "format", "missing"]
    assert (rows[kinds].sum(axis=1) - 1).abs().max() < 1e-9  # every problem has exactly one kind
    # The runs evaluated the same test set at their last iteration: the same greedy accuracy and
    # the same share of answers wrong first at the flaw, logged during training.
    for run, g in rows.groupby("run"):
        last = [json.loads(line) for line in (smoke_runs / run / "metrics.jsonl").open()][-1]
        r = g[g["iteration"] == last["iteration"]].iloc[0]
        assert r["accuracy"] == pytest.approx(last["eval/greedy_accuracy"])
        assert r["flaw"] == pytest.approx(last["eval/greedy_flawed"])
    assert rows.groupby("run")["iteration"].apply(lambda s: s.iloc[0]).eq(0).all()
    starts = rows[rows["iteration"] == 0]  # both runs start from one SFT model
    assert starts[["accuracy", *kinds]].nunique().max() == 1
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "e2"), "--every", "2"]) == 0
    assert sorted(pd.read_csv(tmp_path / "e2" / "errors.csv")["iteration"].unique()) == [0, 2]
    # From the answers the runs kept of their last evaluation, no model: the same as re-evaluating.
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "final"), "--final-only"]) == 0
    final = pd.read_csv(tmp_path / "final" / "errors.csv").set_index("run")
    assert (final["iteration"] == 2).all() and len(final) == 2
    again = rows[rows["iteration"] == 2].set_index("run").loc[final.index]
    cols = ["accuracy", *kinds, "arithmetic_slips", "copy_slips", "lines"]
    pd.testing.assert_frame_equal(final[cols], again[cols])
    assert rows[["arithmetic_slips", "copy_slips"]].stack().between(0, 1).all() and (rows["lines"] >= 0).all()
    probe = [c for c in rows.columns if c.startswith("probe_")]  # fixed inputs: checkpoints only
    assert {"probe_copy", "probe_arithmetic"} <= set(probe) and rows[probe].stack().between(0, 1).all()
    assert not any(c.startswith("probe_") for c in final.columns)
    table = pd.read_csv(out / "table.csv")
    assert script.main([str(out), "--out", str(out), "--replot"]) == 0
    assert script.main([str(out), "--out", str(tmp_path / "again"), "--replot"]) == 0
    assert pd.read_csv(tmp_path / "again" / "table.csv").equals(table)
    assert script.main([str(tmp_path), "--out", str(tmp_path / "r"), "--replot"]) == 2  # no CSV there
    assert pd.read_csv(out / "table.csv").equals(table)
    assert script.main([str(smoke_runs / "sft-arith"), "--out", str(tmp_path / "x")]) == 2  # no RL runs
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "x"), "--every", "0"]) == 2
    assert script.main([str(smoke_runs), "--out", str(tmp_path / "x"), "--probe-problems", "-1"]) == 2
