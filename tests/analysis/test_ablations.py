"""analysis/ablations.py: points and finals from hand-made run folders, panels left out when a
setting has one value, unfinished runs listed; and the script on the smoke sweep's outputs."""

import json

import pandas as pd
import pytest

from vineppo.config import make_config, to_yaml

from .test_value_quality_script import load_script


def fake_run(root, name, algo, k, temperature, rewards, evals, final=True, seed=0, kl=True):
    """A run folder as the loop writes it: config.yaml, metrics.jsonl (train reward per iteration,
    evaluations where `evals` says, KL 0.01 x iteration unless `kl` is False, as RestEM and DPO+ log
    none), summary.json when finished."""
    d = root / name
    d.mkdir(parents=True)
    cfg = make_config([f"rl.algo={algo}", "rl.init=some/sft", f"rl.vine_k={k}", f"rl.temperature={temperature}",
                       f"seed={seed}"])
    (d / "config.yaml").write_text(to_yaml(cfg))
    lines = []
    for i, r in enumerate(rewards, start=1):
        rec = {"iteration": i, "train/reward": r, **({"train/kl_ref": 0.01 * i} if kl else {})}
        if i in evals:
            rec["eval/greedy_accuracy"] = evals[i]
        lines.append(json.dumps(rec))
    (d / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if final:
        (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": 0, "iterations": len(rewards),
                                                     "test_greedy_accuracy": evals[max(evals)], "commit": "abc"}))
    return d


def test_points_final_and_missing_hand_worked(tmp_path):
    ab = load_script("ablations")
    fake_run(tmp_path, "vineppo-k1", "vineppo", 1, 0.6, [0.2, 0.4, 0.6, 0.8], {2: 0.30, 4: 0.35})
    fake_run(tmp_path, "vineppo-k9", "vineppo", 9, 0.6, [0.5, 0.5], {2: 0.40})
    fake_run(tmp_path, "ppo-t1", "ppo", 9, 1.0, [0.1], {1: 0.2})
    fake_run(tmp_path, "ppo-unfinished", "ppo", 9, 0.6, [0.1], {}, final=False)
    points, final, missing, duplicates = ab.collect([tmp_path])
    k1 = points[points["run"].str.endswith("vineppo-k1")].sort_values("iteration")
    # Train accuracy at an evaluation: mean reward of the iterations since the previous one.
    assert k1["train_accuracy"].tolist() == pytest.approx([0.3, 0.7])
    assert k1["kl_ref"].tolist() == pytest.approx([0.02, 0.04])
    assert sorted(final["test_accuracy"].tolist()) == pytest.approx([0.2, 0.35, 0.4])
    assert missing == [str(tmp_path / "ppo-unfinished")] and duplicates == []
    # Budgets differ (4, 2 and 1 iterations): the K and temperature panels keep the most common.
    same = final.assign(iterations=4)
    assert ab.plot(points, same, tmp_path) == []  # two Ks and two temperatures: all four panels
    one_t = same[same["temperature"] == 0.6]
    assert ab.plot(points, one_t, tmp_path) == ["accuracy vs temperature: the runs given use a single temperature"]
    longer = same.assign(iterations=[40 if r.endswith("ppo-t1") else 4 for r in same["run"]])  # T = 1.0 run longer
    skipped = ab.plot(points, longer, tmp_path)
    assert skipped[0].endswith("ppo-t1: a different number of iterations, left out of the K and temperature panels")
    assert skipped[1] == "accuracy vs temperature: the runs given use a single temperature"


def test_a_run_found_in_two_sweeps_counts_once(tmp_path):
    """sweep=mc_samples' K = 9 run and sweep=temperature's VinePPO at T = 0.6 are one experiment:
    read from both folders it is one seed, not two, and the copy is named. A run with the same
    settings but other logged numbers is not a copy."""
    ab = load_script("ablations")
    fake_run(tmp_path / "mc_samples", "vineppo_k9-s0", "vineppo", 9, 0.6, [0.2, 0.4], {2: 0.38})
    fake_run(tmp_path / "mc_samples", "vineppo_k1-s0", "vineppo", 1, 0.6, [0.2, 0.4], {2: 0.30})
    fake_run(tmp_path / "temperature", "vineppo_t0.6-s0", "vineppo", 9, 0.6, [0.2, 0.4], {2: 0.38})
    fake_run(tmp_path / "temperature", "vineppo_t0.6-s1", "vineppo", 9, 0.6, [0.2, 0.5], {2: 0.40})
    points, final, _, duplicates = ab.collect([tmp_path / "mc_samples", tmp_path / "temperature"])
    assert duplicates == ["temperature/vineppo_t0.6-s0: the same run as mc_samples/vineppo_k9-s0, counted once"]
    assert sorted(final["run"]) == ["mc_samples/vineppo_k1-s0", "mc_samples/vineppo_k9-s0", "temperature/vineppo_t0.6-s1"]
    assert len(points) == 3
    assert ab.main([str(tmp_path / "mc_samples"), str(tmp_path / "temperature"), "--out", str(tmp_path / "out")]) == 0
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert prov["duplicate_runs"] == duplicates


def test_at_iteration_compares_the_runs_at_that_evaluation(tmp_path):
    """K = 1 ends where K = 9 ends (0.40) but trails it at iteration 2 (0.30 vs 0.38): the
    comparison at iteration 2 shows it, and a run never evaluated there is named and left out."""
    ab = load_script("ablations")
    fake_run(tmp_path / "runs", "vineppo-k1", "vineppo", 1, 0.6, [0.2] * 4, {2: 0.30, 4: 0.40})
    fake_run(tmp_path / "runs", "vineppo-k9", "vineppo", 9, 0.6, [0.2] * 4, {2: 0.38, 4: 0.40})
    fake_run(tmp_path / "runs", "vineppo-k3", "vineppo", 3, 0.6, [0.2] * 4, {4: 0.40})
    points, final, _, _ = ab.collect([tmp_path / "runs"])
    at2, left = ab.at_iteration(points, final, 2)
    assert dict(zip(at2["k"], at2["test_accuracy"], strict=True)) == {1: pytest.approx(0.30), 9: pytest.approx(0.38)}
    assert (at2["iterations"] == 2).all()
    assert left == ["runs/vineppo-k3: no evaluation at iteration 2, left out of the K and temperature panels"]
    assert ab.main([str(tmp_path / "runs"), "--at-iteration", "2", "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "final.csv")
    assert sorted(written["test_accuracy"]) == pytest.approx([0.30, 0.38])
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["at_iteration"] == 2
    assert ab.main([str(tmp_path / "runs"), "--at-iteration", "7", "--out", str(tmp_path / "out")]) == 2


@pytest.mark.slow
def test_script_on_smoke_outputs(smoke_runs, tmp_path):
    ab = load_script("ablations")
    assert ab.main([str(smoke_runs), "--out", str(tmp_path)]) == 0
    final = pd.read_csv(tmp_path / "final.csv")
    assert sorted(final["algo"]) == ["ppo", "vineppo"]
    prov = json.loads((tmp_path / "provenance.json").read_text())
    assert len(prov["panels_left_out"]) == 2 and prov["missing_runs"] == []
    assert (tmp_path / "ablations.png").stat().st_size > 0 and (tmp_path / "ablations.pdf").exists()
    assert ab.main([str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2


def test_kl_at_an_accuracy_hand_worked(tmp_path):
    """KL in the fake runs is 0.01 x iteration, read where test accuracy crosses 0.5 between two
    evaluations. PPO run a reaches 0.5 exactly at iteration 3 (0.03); run b between iteration 2
    (0.4) and 4 (0.8), a quarter of the way: 0.025; run c never. VinePPO run a is past 0.5 at its
    first evaluation (no crossing to read), run b crosses halfway between iterations 1 and 3: 0.02."""
    ab = load_script("ablations")
    fake_run(tmp_path / "runs", "ppo-a", "ppo", 9, 0.6, [0.2] * 4, {1: 0.1, 2: 0.4, 3: 0.5, 4: 0.7})
    fake_run(tmp_path / "runs", "ppo-b", "ppo", 9, 0.6, [0.2] * 4, {1: 0.3, 2: 0.4, 4: 0.8})
    fake_run(tmp_path / "runs", "ppo-c", "ppo", 9, 0.6, [0.2] * 2, {1: 0.2, 2: 0.3})
    fake_run(tmp_path / "runs", "vineppo-a", "vineppo", 9, 0.6, [0.2] * 3, {1: 0.55, 3: 0.6})
    fake_run(tmp_path / "runs", "vineppo-b", "vineppo", 9, 0.6, [0.2] * 3, {1: 0.3, 3: 0.7})
    points, _, _, _ = ab.collect([tmp_path / "runs"])
    table = ab.kl_at(points, 0.5).set_index("method")
    assert sorted(table.index) == ["ppo", "vineppo_k9"] and (table["temperature"] == 0.6).all()
    assert table.loc["ppo", "runs"] == 3 and table.loc["ppo", "runs_reaching"] == 2
    assert table.loc["ppo", "kl_at_accuracy_mean"] == pytest.approx(0.0275)
    assert table.loc["ppo", "kl_at_accuracy_std"] == pytest.approx((2 * 0.0025**2) ** 0.5)  # sample std
    assert table.loc["ppo", "first_iteration_mean"] == pytest.approx(3.5)
    assert table.loc["ppo", "kl_last_mean"] == pytest.approx((0.04 + 0.04 + 0.02) / 3)  # last evaluations
    assert table.loc["vineppo_k9", "runs"] == 2 and table.loc["vineppo_k9", "runs_reaching"] == 1
    assert table.loc["vineppo_k9", "kl_at_accuracy_mean"] == pytest.approx(0.02)
    assert table.loc["vineppo_k9", "kl_last_mean"] == pytest.approx(0.03)
    assert ab.crossing([0.2, 0.6], [1.0, 3.0], 0.3) == (1, pytest.approx(1.5))
    assert ab.crossing([0.6], [1.0], 0.5)[0] == 0 and ab.crossing([0.1], [1.0], 0.5)[0] is None
    assert ab.main([str(tmp_path / "runs"), "--kl-at", "0.5", "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "kl_at.csv").set_index("method")
    assert written.loc["ppo", "kl_at_accuracy_mean"] == pytest.approx(0.0275)
    assert json.loads((tmp_path / "out" / "provenance.json").read_text())["kl_at"] == [0.5]


def test_methods_without_kl_are_left_out_of_the_kl_readings(tmp_path):
    """RestEM and DPO+ have no KL term and log no train/kl_ref: their points carry NaN, the KL panel
    and kl_at.csv leave them out by name, the other panels keep them."""
    ab = load_script("ablations")
    fake_run(tmp_path / "runs", "ppo-s0", "ppo", 9, 0.6, [0.2, 0.4], {1: 0.3, 2: 0.5})
    fake_run(tmp_path / "runs", "restem-s0", "restem", 9, 0.6, [0.2, 0.4], {1: 0.3, 2: 0.5}, kl=False)
    points, final, _, _ = ab.collect([tmp_path / "runs"])
    assert points.loc[points["algo"] == "restem", "kl_ref"].isna().all() and len(points) == 4
    assert ab.without_kl(points) == ["restem"]
    assert ab.kl_at(points, 0.5)["method"].tolist() == ["ppo"]
    assert "accuracy vs KL: restem log no KL to the reference (no KL term)" in ab.plot(points, final, tmp_path)
    assert ab.main([str(tmp_path / "runs"), "--kl-at", "0.5", "--baseline", "ppo", "--out", str(tmp_path / "out")]) == 0
    assert pd.read_csv(tmp_path / "out" / "kl_at_paired.csv").empty  # nothing to pair PPO with


def test_test_accuracy_at_a_train_accuracy_hand_worked(tmp_path):
    """Rewards 0.2, 0.4, 0.6, 0.8 with evaluations at 2 and 4: train accuracies 0.3 and 0.7 there, test
    0.30 and 0.50. At train accuracy 0.5 the test accuracy is read halfway: 0.40. At 0.7 the
    second evaluation itself, 0.50. At 0.3 the run is there at its first evaluation (no crossing)
    and at 0.8 never: NaN both."""
    ab = load_script("ablations")
    fake_run(tmp_path / "runs", "ppo-s0", "ppo", 9, 0.6, [0.2, 0.4, 0.6, 0.8], {2: 0.30, 4: 0.50})
    points, _, _, _ = ab.collect([tmp_path / "runs"])
    got = {lvl: ab.accuracy_at_train(points, lvl)["test_accuracy"].item() for lvl in (0.3, 0.5, 0.7, 0.8)}
    assert got[0.5] == pytest.approx(0.40) and got[0.7] == pytest.approx(0.50)
    assert pd.isna(got[0.3]) and pd.isna(got[0.8])


def test_paired_by_seed_hand_worked(tmp_path):
    """Two seeds each of PPO and VinePPO. Test accuracy at train accuracy 0.5 (every run: train 0.3
    then 0.7, so the midpoint of its two test accuracies): PPO 0.40 / 0.50, VinePPO 0.45 / 0.50;
    VinePPO - PPO per seed 0.05 and 0.00: mean 0.025, standard error std / sqrt(2) = 0.025, one
    seed ahead. KL where test accuracy crosses 0.5 (0.01 x iteration): PPO seed 0 at iteration 4
    (0.04), VinePPO seed 0 two thirds of the way from iteration 2 to 4 (0.0333); seed 1 is at 0.5
    from its first evaluation in both, so one pair: -0.0067."""
    ab = load_script("ablations")
    rewards = [0.2, 0.4, 0.6, 0.8]
    fake_run(tmp_path / "runs", "ppo-s0", "ppo", 9, 0.6, rewards, {2: 0.30, 4: 0.50}, seed=0)
    fake_run(tmp_path / "runs", "ppo-s1", "ppo", 9, 0.6, rewards, {2: 0.50, 4: 0.50}, seed=1)
    fake_run(tmp_path / "runs", "vineppo-s0", "vineppo", 9, 0.6, rewards, {2: 0.30, 4: 0.60}, seed=0)
    fake_run(tmp_path / "runs", "vineppo-s1", "vineppo", 9, 0.6, rewards, {2: 0.50, 4: 0.50}, seed=1)
    points, _, _, _ = ab.collect([tmp_path / "runs"])
    row = ab.paired(ab.accuracy_at_train(points, 0.5), "test_accuracy", "ppo").iloc[0]
    assert row["method"] == "vineppo_k9" and row["pairs"] == 2 and row["seeds_ahead"] == 1
    assert row["difference_mean"] == pytest.approx(0.025) and row["difference_se"] == pytest.approx(0.025)
    kl = ab.paired(ab.kl_at_runs(points, 0.5), "kl_ref", "ppo").iloc[0]
    assert kl["difference_mean"] == pytest.approx(0.02 + 0.02 * 2 / 3 - 0.04) and kl["pairs"] == 1
    assert kl["seeds_ahead"] == 0 and pd.isna(kl["difference_se"])
    assert ab.main([str(tmp_path / "runs"), "--train-at", "0.5", "0.8", "--kl-at", "0.5", "--baseline", "ppo",
                    "--out", str(tmp_path / "out")]) == 0
    gen = pd.read_csv(tmp_path / "out" / "generalisation.csv").set_index(["method", "level"])
    assert gen.loc[("ppo", 0.5), "test_accuracy_mean"] == pytest.approx(0.45)
    assert gen.loc[("ppo", 0.8), "runs"] == 2 and gen.loc[("ppo", 0.8), "runs_reaching"] == 0
    both = pd.read_csv(tmp_path / "out" / "generalisation_paired.csv").set_index("level")
    assert both.loc[0.5, "difference_mean"] == pytest.approx(0.025) and both.loc[0.8, "pairs"] == 0
    assert pd.read_csv(tmp_path / "out" / "kl_at_paired.csv")["difference_mean"].item() == pytest.approx(-0.02 / 3)
    # Pairing needs one run per method and seed, and a baseline that is there.
    with pytest.raises(ValueError, match="no such method"):
        ab.paired(ab.accuracy_at_train(points, 0.5), "test_accuracy", "grpo")
    out = tmp_path / "bad"
    assert ab.main([str(tmp_path / "runs"), "--train-at", "0.5", "--baseline", "grpo", "--out", str(out)]) == 2
    assert ab.main([str(tmp_path / "runs"), "--baseline", "ppo", "--out", str(out)]) == 2
    assert not out.exists()  # nothing written
    fake_run(tmp_path / "runs", "vineppo-s1-again", "vineppo", 9, 0.6, rewards, {2: 0.40, 4: 0.50}, seed=1)
    points, _, _, _ = ab.collect([tmp_path / "runs"])
    with pytest.raises(ValueError, match="share a seed"):
        ab.paired(ab.accuracy_at_train(points, 0.5), "test_accuracy", "ppo")
    assert ab.main([str(tmp_path / "runs"), "--train-at", "0.5", "--baseline", "ppo", "--out", str(out)]) == 2


def test_sampled_measure_where_every_run_logged_it(tmp_path):
    """With every run's evaluations sampled (rl.eval_samples, the paper preset) the points and
    finals read the mean over samples; a run without it sends every reading back to greedy."""
    ab = load_script("ablations")
    for name, seed in (("vineppo-a", 0), ("vineppo-b", 1)):
        d = fake_run(tmp_path, name, "vineppo", 9, 0.6, [0.2, 0.4], {1: 0.5, 2: 0.6}, seed=seed)
        records = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for r in records:
            r["eval/sampled_accuracy"] = r["eval/greedy_accuracy"] / 2
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, "test_sampled_accuracy": 0.3}))
    assert ab.choose_measure([tmp_path]) == "sampled"
    points, final, _, _ = ab.collect([tmp_path], "sampled")
    assert sorted(points["test_accuracy"]) == pytest.approx([0.25, 0.25, 0.3, 0.3])
    assert final["test_accuracy"].tolist() == [0.3, 0.3]
    fake_run(tmp_path, "vineppo-c", "vineppo", 9, 0.6, [0.2], {1: 0.5}, seed=2)  # greedy only
    assert ab.choose_measure([tmp_path]) == "greedy"
