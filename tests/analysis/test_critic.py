"""analysis/critic.py on hand-made runs: per-estimator means and spreads, old runs named and left out."""

import json

import pandas as pd
import pytest

from vineppo.runio import append_jsonl

from .test_value_quality_script import load_script


def make_run(root, name, algo, seed, value_lr, evs, with_stats=True, value_clip=0.2, whiten=True, head="zero"):
    d = root / name
    d.mkdir()
    for i, ev in enumerate(evs, start=1):
        r = {"iteration": i, "loss/value": 0.3 - 0.1 * ev, "eval/greedy_accuracy": 0.5 + 0.1 * ev}
        if with_stats:
            r.update({"value/explained_variance": ev, "value/mean": ev / 2, "value/mean_return": 0.5})
        append_jsonl(d / "metrics.jsonl", r)
    (d / "config.yaml").write_text("rl:\n  learning_rate: 3.0e-05\n  vine_k: 9\n"
                                   f"  value_learning_rate: {'null' if value_lr is None else value_lr}\n"
                                   f"  value_clip: {'null' if value_clip is None else value_clip}\n"
                                   f"  whiten_advantages: {'true' if whiten else 'false'}\n"
                                   f"  value_head_init: {head}\n")
    (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": seed}))


def test_table_per_value_learning_rate(tmp_path):
    critic = load_script("critic")
    make_run(tmp_path, "ppo-s0", "ppo", 0, None, (0.0, 0.1))
    make_run(tmp_path, "ppo-s1", "ppo", 1, None, (0.0, 0.3))
    make_run(tmp_path, "fast-s0", "ppo", 0, 0.003, (0.0, 0.6))
    make_run(tmp_path, "fast-s1", "ppo", 1, 0.003, (0.0, 0.8))
    make_run(tmp_path, "fastnoclip-s0", "ppo", 0, 0.003, (0.0, 0.9), value_clip=None)
    make_run(tmp_path, "fastnowhiten-s0", "ppo", 0, 0.003, (0.0, 0.2), whiten=False)
    make_run(tmp_path, "drawn-s0", "ppo", 0, None, (-5.0, -4.0), head="normal")  # the authors' value head
    make_run(tmp_path, "old-s0", "ppo", 0, None, (0.0, 0.5), with_stats=False)
    make_run(tmp_path, "vine-s0", "vineppo", 0, None, (0.3, 0.4))  # MC values: an estimator of their own
    make_run(tmp_path, "grpo-s0", "grpo", 0, None, (0.9, 0.9))  # no value estimate: not read
    assert critic.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    t = pd.read_csv(tmp_path / "out" / "table.csv")
    # The null rate is the policy's (3e-5); each estimator's iteration 2: mean and std of its seeds.
    assert sorted(t["estimator"].unique()) == ["MC K=9", "value net lr 0.003", "value net lr 0.003, advantages not whitened",
                                               "value net lr 0.003, no value clip", "value net lr 3e-05",
                                               "value net lr 3e-05, head normal"]
    second = t[t["iteration"] == 2].set_index("estimator")
    assert second.loc["value net lr 3e-05", "explained_variance_mean"] == pytest.approx(0.2)
    assert second.loc["value net lr 3e-05", "explained_variance_std"] == pytest.approx(0.1 * 2 ** 0.5)
    assert second.loc["value net lr 0.003", "explained_variance_mean"] == pytest.approx(0.7)
    assert second.loc["value net lr 0.003", "test_accuracy_mean"] == pytest.approx(0.57)
    assert second.loc["value net lr 0.003", "mean_value_mean"] == pytest.approx(0.35)
    assert second.loc["value net lr 0.003", "seeds"] == 2 and second.loc["MC K=9", "seeds"] == 1
    assert second.loc["MC K=9", "explained_variance_mean"] == pytest.approx(0.4)
    assert second.loc["value net lr 0.003, no value clip", "explained_variance_mean"] == pytest.approx(0.9)
    assert second.loc["value net lr 0.003, advantages not whitened", "explained_variance_mean"] == pytest.approx(0.2)
    assert second.loc["value net lr 3e-05, head normal", "explained_variance_mean"] == pytest.approx(-4.0)
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["left_out"] == ["old-s0"] and "grpo-s0" not in prov["runs"] and "vine-s0" in prov["runs"]
    assert (tmp_path / "out" / "critic.png").exists()


def test_no_critic_statistics_is_a_clear_failure(tmp_path, capsys):
    critic = load_script("critic")
    make_run(tmp_path, "old-s0", "ppo", 0, None, (0.0,), with_stats=False)
    assert critic.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "logged before them: old-s0" in capsys.readouterr().err
