"""Speed-up to the baseline's peak, hand-worked; the script on the smoke sweep's outputs."""

import json

import pandas as pd
import pytest

from .test_value_quality_script import load_script


def curves(rows):
    return pd.DataFrame(rows, columns=["algo", "seed", "iteration", "grad_steps", "elapsed_s", "test_accuracy"])


def test_speedup_to_peak_hand_worked():
    ce = load_script("compute_efficiency")
    c = curves([
        ("ppo", 0, 5, 100, 50.0, 0.30), ("ppo", 0, 10, 200, 100.0, 0.40), ("ppo", 0, 15, 300, 150.0, 0.38),
        ("vineppo", 0, 5, 20, 40.0, 0.35), ("vineppo", 0, 10, 40, 80.0, 0.41), ("vineppo", 0, 15, 60, 120.0, 0.45),
    ])
    s = ce.speedup_to_peak(c)
    # PPO peaks at 0.40 after 200 steps / 100 s; VinePPO first reaches it at 40 steps / 80 s.
    assert s["speedup_grad_steps"] == pytest.approx(5.0) and s["speedup_wall_clock"] == pytest.approx(1.25)
    never = ce.speedup_to_peak(c.assign(test_accuracy=[0.3, 0.4, 0.38, 0.1, 0.2, 0.3]))
    assert never["method_reaches_peak"] is False and "speedup_wall_clock" not in never
    # Seeds are averaged before the peak is taken: ppo seeds at 0.5 and 0.1 average 0.3.
    two = curves([("ppo", 0, 5, 10, 10.0, 0.5), ("ppo", 1, 5, 10, 10.0, 0.1), ("vineppo", 0, 5, 10, 5.0, 0.3)])
    assert ce.speedup_to_peak(two)["baseline_peak_accuracy"] == pytest.approx(0.3)


def test_speedup_in_episodes_against_another_baseline():
    ce = load_script("compute_efficiency")
    c = curves([
        # RestEM: 2 gradient steps per iteration of 256 episodes, peak 0.88 at iteration 15.
        ("restem", 0, 5, 10, 30.0, 0.49), ("restem", 0, 10, 20, 60.0, 0.61), ("restem", 0, 15, 30, 90.0, 0.88),
        # VinePPO: 8 steps per iteration, reaches 0.88 at iteration 5.
        ("vineppo", 0, 5, 40, 75.0, 0.88), ("vineppo", 0, 10, 80, 150.0, 0.89), ("vineppo", 0, 15, 120, 225.0, 0.89),
    ]).assign(episodes=lambda d: d["iteration"] * 256)
    s = ce.speedup_to_peak(c, baseline="restem")
    assert s["baseline_episodes_to_peak"] == 3840 and s["method_episodes"] == 1280
    assert s["speedup_episodes"] == pytest.approx(3.0)  # 3x fewer episodes
    assert s["speedup_grad_steps"] == pytest.approx(30 / 40) and s["speedup_wall_clock"] == pytest.approx(90 / 75)
    assert "speedup_episodes" not in ce.speedup_to_peak(c.drop(columns="episodes"), baseline="restem")


def test_curves_separate_only_beyond_their_noise():
    ce = load_script("compute_efficiency")
    one = [("ppo", 0, 1, 8, 10.0, 0.40), ("ppo", 1, 1, 8, 10.0, 0.44), ("ppo", 2, 1, 8, 10.0, 0.42),
           ("vineppo", 0, 1, 8, 12.0, 0.50), ("vineppo", 1, 1, 8, 12.0, 0.54), ("vineppo", 2, 1, 8, 12.0, 0.52)]
    two = [(a, s, 2, 16, t * 2, acc) for a, s, _, _, t, acc in one]
    sep = ce.separation(curves(one + two))
    # Gap 0.10 at both evaluations; each method's seeds have std 0.02, s.e. 0.02/sqrt(3); 2 s.e. of
    # the gap = 0.0327.
    assert sep["separated"] and sep["widest"]["gap"] == pytest.approx(0.10)
    assert sep["widest"]["two_se"] == pytest.approx(2 * (2 * 0.02 ** 2 / 3) ** 0.5)
    assert not ce.separation(curves(one))["separated"]  # beyond 2 s.e. at one evaluation only
    flipped = [(a, s, 2, 16, t, 0.94 - acc) for a, s, _, _, t, acc in one]  # the gap changes sign
    assert not ce.separation(curves(one + flipped))["separated"]
    noisy = [r[:5] + (acc,) for r, acc in zip(one + two, (0.3, 0.5, 0.4, 0.35, 0.55, 0.45) * 2, strict=True)]
    assert not ce.separation(curves(noisy))["separated"]  # gap 0.05 < 2 s.e. 0.163
    assert ce.separation(curves(one[:1] + one[3:4])) is None  # one seed: no noise estimate


def test_paired_gaps_hand_worked():
    ce = load_script("compute_efficiency")
    # Seeds 0-2 at iteration 1: differences +0.10, +0.02, -0.03 (mean 0.03, std 0.0655); at
    # iteration 2 seed 2 has no VinePPO run, so only seeds 0-1 pair: +0.05, +0.05; GRPO is not asked.
    c = curves([("ppo", 0, 1, 8, 1.0, 0.40), ("ppo", 1, 1, 8, 1.0, 0.50), ("ppo", 2, 1, 8, 1.0, 0.60),
                ("vineppo", 0, 1, 8, 1.0, 0.50), ("vineppo", 1, 1, 8, 1.0, 0.52), ("vineppo", 2, 1, 8, 1.0, 0.57),
                ("ppo", 0, 2, 16, 2.0, 0.70), ("ppo", 1, 2, 16, 2.0, 0.70), ("ppo", 2, 2, 16, 2.0, 0.90),
                ("vineppo", 0, 2, 16, 2.0, 0.75), ("vineppo", 1, 2, 16, 2.0, 0.75), ("grpo", 2, 2, 16, 2.0, 0.0)])
    p = ce.paired_gaps(c)
    assert p["iteration"].tolist() == [1, 2] and p["seeds"].tolist() == [3, 2]
    assert p["gap"].tolist() == pytest.approx([0.03, 0.05])
    sd = ((0.07 ** 2 + 0.01 ** 2 + 0.06 ** 2) / 2) ** 0.5  # deviations from 0.03
    assert p["se"].tolist() == pytest.approx([sd / 3 ** 0.5, 0.0], abs=1e-12)
    assert p["ahead"].tolist() == [2, 2] and p["behind"].tolist() == [1, 0]
    assert ce.paired_gaps(c, baseline="grpo", method="vineppo")["seeds"].tolist() == []


def test_wall_clock_leaves_out_evaluations(tmp_path):
    from vineppo.runio import append_jsonl

    ce = load_script("compute_efficiency")
    d = tmp_path / "vineppo-arith-s0"
    d.mkdir()
    for i, (elapsed, ev) in enumerate([(10.0, 4.0), (24.0, 4.0), (38.0, 4.0)], start=1):
        append_jsonl(d / "metrics.jsonl", {"iteration": i, "train/grad_steps": 8 * i, "time/elapsed_s": elapsed,
                                           "eval/greedy_accuracy": 0.5, "time/eval_s": ev, "time/generation_s": 1.0,
                                           "time/value_estimation_s": 1.0, "time/training_s": 1.0})
    (d / "config.yaml").write_text("preset: tiny\nrl:\n  prompts_per_iter: 32\n  samples_per_prompt: 8\n")
    (d / "summary.json").write_text(json.dumps({"algo": "vineppo", "seed": 0}))
    c, _, _, _ = ce.collect([tmp_path])
    assert c["elapsed_s"].tolist() == [10.0, 20.0, 30.0]
    assert c["episodes"].tolist() == [256, 512, 768]  # iteration x 32 prompts x 8 samples
    (d / "config.yaml").write_text("preset: tiny\n")  # a config without the budget: no episodes axis
    assert ce.collect([tmp_path])[0]["episodes"].isna().all()
    # Runs that log each iteration's episodes (every prompt each iteration: rl.prompts_per_iter=0)
    # are counted from them.
    records = [json.loads(line) | {"train/episodes": n} for line, n in
               zip((d / "metrics.jsonl").read_text().splitlines(), [100, 90, 80], strict=True)]
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (d / "config.yaml").write_text("preset: tiny\nrl:\n  prompts_per_iter: 0\n  samples_per_prompt: 8\n")
    assert ce.collect([tmp_path])[0]["episodes"].tolist() == [100, 190, 270]


@pytest.mark.slow
def test_script_on_smoke_outputs(smoke_runs, tmp_path):
    ce = load_script("compute_efficiency")
    assert ce.main([str(smoke_runs), "--out", str(tmp_path)]) == 0
    c = pd.read_csv(tmp_path / "curves.csv")
    assert sorted(c["algo"].unique()) == ["ppo", "vineppo"] and (c["iteration"] == 2).all()
    split = pd.read_csv(tmp_path / "time_split.csv")
    assert len(split) == 4 and (split[["generation", "value estimation", "training"]] >= 0).all().all()
    written = json.loads((tmp_path / "speedup.json").read_text())
    # One seed each: no noise estimate, so no speed-up is claimed; the number is kept aside.
    assert written["speedup"] is None and written["separation"] is None
    assert written["speedup_if_noise_ignored"]["baseline"] == "ppo"
    assert (tmp_path / "compute_efficiency.png").stat().st_size > 0 and (tmp_path / "compute_efficiency.pdf").exists()
    assert ce.main([str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert ce.main([str(smoke_runs), "--baseline", "restem", "--out", str(tmp_path / "x")]) == 2  # no such runs
    assert not (tmp_path / "x").exists()
    assert written["speedup_if_noise_ignored"]["baseline_episodes_to_peak"] == 2 * c["episodes"].iloc[0] / c[
        "iteration"].iloc[0]  # the smoke sweep's budget, from its configs
    assert not (tmp_path / "paired.csv").exists()  # only with --paired
    assert ce.main([str(smoke_runs), "--paired", "--out", str(tmp_path / "p")]) == 0
    paired = pd.read_csv(tmp_path / "p" / "paired.csv")
    by = c.set_index("algo")["test_accuracy"]
    assert paired["seeds"].tolist() == [1] and paired["gap"].iloc[0] == pytest.approx(by["vineppo"] - by["ppo"])


def test_wall_clock_separation_uses_each_runs_last_evaluation():
    """Ahead per step, level in time: VinePPO's evaluations come at twice PPO's seconds, so at
    PPO's evaluation times (10 s, 20 s, 30 s) VinePPO hands over what it had at 0 / 10 / 30 s."""
    ce = load_script("compute_efficiency")
    rows = []
    for seed, noise in enumerate((-0.01, 0.0, 0.01)):
        for it, (p, v) in enumerate([(0.40, 0.50), (0.50, 0.60), (0.60, 0.70)], start=1):
            rows.append(("ppo", seed, it, 8 * it, 10.0 * it, p + noise))
            rows.append(("vineppo", seed, it, 8 * it, 20.0 * it, v + noise))
    c = curves(rows)
    assert ce.separation(c)["separated"] and ce.separation(c)["ahead"] == 1  # +0.10 at every iteration
    clock = ce.separation_wall_clock(c)
    # 10 s: VinePPO has no evaluation yet -> point left out; 20 s: 0.50 vs PPO 0.50; 30 s: 0.50 vs 0.60.
    assert [p["seconds"] for p in clock["points"]] == [20.0, 30.0]
    assert [round(p["gap"], 6) for p in clock["points"]] == [0.0, -0.1]
    assert not clock["separated"] and clock["ahead"] == 0
    # Ahead in time too when VinePPO's evaluations come at PPO's times.
    same = curves([r if r[0] == "ppo" else r[:4] + (10.0 * r[2], r[5]) for r in rows])
    assert ce.separation_wall_clock(same)["ahead"] == 1


def test_wall_clock_speedup_claimed_only_where_time_separates(tmp_path):
    from vineppo.runio import append_jsonl

    ce = load_script("compute_efficiency")
    for algo, per_iter, accs in (("ppo", 10.0, (0.40, 0.50, 0.60)), ("vineppo", 20.0, (0.50, 0.60, 0.70))):
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            d = tmp_path / f"{algo}-arith-s{seed}"
            d.mkdir()
            for i, acc in enumerate(accs, start=1):
                append_jsonl(d / "metrics.jsonl", {
                    "iteration": i, "train/grad_steps": 8 * i, "time/elapsed_s": per_iter * i, "time/eval_s": 0.0,
                    "eval/greedy_accuracy": acc + noise, "time/generation_s": 1.0, "time/value_estimation_s": 1.0,
                    "time/training_s": 1.0})
            (d / "config.yaml").write_text("preset: tiny\n")
            (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": seed}))
    assert ce.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "speedup.json").read_text())
    # PPO peaks at 0.60 (24 steps, 30 s); VinePPO reaches it at 16 steps but 40 s.
    assert written["speedup"]["speedup_grad_steps"] == pytest.approx(1.5)
    assert "speedup_wall_clock" not in written["speedup"]
    assert written["speedup"]["speedup_wall_clock_if_noise_ignored"] == pytest.approx(0.75)
    assert written["separation_wall_clock"]["separated"] is False


def test_tolerance_times_both_methods_to_the_same_lowered_target():
    ce = load_script("compute_efficiency")
    c = curves([
        # Both end on the same plateau; the baseline's peak (0.887) is one noisy evaluation late on.
        ("restem", 0, 15, 30, 60.0, 0.858), ("restem", 0, 16, 32, 64.0, 0.881), ("restem", 0, 23, 46, 92.0, 0.887),
        ("vineppo", 0, 4, 32, 80.0, 0.856), ("vineppo", 0, 5, 40, 100.0, 0.885), ("vineppo", 0, 8, 64, 160.0, 0.883),
    ])
    exact = ce.speedup_to_peak(c, baseline="restem")
    assert exact["method_reaches_peak"] is False and exact["target_accuracy"] == pytest.approx(0.887)
    s = ce.speedup_to_peak(c, baseline="restem", tolerance=0.01)
    # Target 0.877: RestEM first at 32 steps / 64 s, VinePPO first at 40 steps / 100 s.
    assert s["target_accuracy"] == pytest.approx(0.877) and s["baseline_steps_to_peak"] == 32
    assert s["speedup_grad_steps"] == pytest.approx(32 / 40) and s["speedup_wall_clock"] == pytest.approx(0.64)


def test_ratio_in_words():
    # A ratio under one is the method needing more, not "0.8x fewer".
    ce = load_script("compute_efficiency")
    assert ce.times(2.0) == "2.0x fewer"
    assert ce.times(0.8) == "1.2x more"
    assert ce.times(1.0) == "1.0x fewer"


def test_crossing_curves_have_no_side_ahead():
    """Apart one way early and the other way late (PPO climbs first, VinePPO ends higher): the
    curves separate, but neither is ahead, so no one-sided speed-up follows from them."""
    ce = load_script("compute_efficiency")
    rows = []
    for seed, noise in enumerate((-0.01, 0.0, 0.01)):
        for it, (p, v) in enumerate([(0.6, 0.4), (0.7, 0.5), (0.8, 0.8), (0.80, 0.9), (0.80, 0.9)], start=1):
            rows.append(("ppo", seed, it, 8 * it, 10.0 * it, p + noise))
            rows.append(("vineppo", seed, it, 8 * it, 10.0 * it, v + noise))
    sep = ce.separation(curves(rows))
    # gaps -0.2, -0.2, 0, +0.1, +0.1 against 2 s.e. of about 0.016: runs both ways.
    assert sep["separated"] and sep["crossing"] and sep["ahead"] == 0
    one_way = ce.separation(curves([r for r in rows if r[2] >= 3]))
    assert one_way["ahead"] == 1 and not one_way["crossing"]


def test_vine_k_ablation_runs_are_methods_of_their_own(tmp_path):
    """VinePPO runs with different K are labelled vineppo_k<K> (else their curves would be averaged
    together); with one K they stay "vineppo"."""
    from vineppo.runio import append_jsonl

    ce = load_script("compute_efficiency")

    def run(name, algo, k, per_iter, accs, seed=0, value_lr=None):
        d = tmp_path / name
        d.mkdir()
        for i, acc in enumerate(accs, start=1):
            append_jsonl(d / "metrics.jsonl", {
                "iteration": i, "train/grad_steps": 8 * i, "time/elapsed_s": per_iter * i, "time/eval_s": 0.0,
                "eval/greedy_accuracy": acc, "time/generation_s": 1.0, "time/value_estimation_s": per_iter - 2,
                "time/training_s": 1.0})
        (d / "config.yaml").write_text(f"rl:\n  vine_k: {k}\n  prompts_per_iter: 4\n  samples_per_prompt: 2\n"
                                       f"  value_learning_rate: {'null' if value_lr is None else value_lr}\n")
        (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": seed}))

    run("ppo-s0", "ppo", 9, 10.0, (0.4, 0.5, 0.6))
    run("k9-s0", "vineppo", 9, 20.0, (0.5, 0.6, 0.7))
    curves_one_k, _, _, _ = ce.collect([tmp_path])
    assert set(curves_one_k["algo"]) == {"ppo", "vineppo"}
    run("k3-s0", "vineppo", 3, 12.0, (0.5, 0.6, 0.65))
    c, splits, _, _ = ce.collect([tmp_path])
    assert set(c["algo"]) == set(splits["algo"]) == {"ppo", "vineppo_k9", "vineppo_k3"}
    assert c[c["algo"] == "vineppo_k3"]["elapsed_s"].tolist() == [12.0, 24.0, 36.0]
    assert splits[splits["algo"] == "vineppo_k3"]["value estimation"].tolist() == [10.0] * 3
    s = ce.speedup_to_peak(c, method="vineppo_k3")  # PPO's 0.6 at 24 steps / 30 s; K = 3 at 16 / 24 s
    assert s["speedup_grad_steps"] == pytest.approx(1.5) and s["speedup_wall_clock"] == pytest.approx(1.25)
    pal = ce.palette(c["algo"])
    assert len({pal[m] for m in ("ppo", "vineppo_k9", "vineppo_k3")}) == 3
    assert ce.main([str(tmp_path), "--method", "vineppo_k3", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "speedup.json").read_text())["speedup_if_noise_ignored"]["method"] == "vineppo_k3"


def labelled_run(root, name: str, algo: str, rl_yaml: str, accs) -> None:
    """A finished run folder with evaluations `accs`, 10 s and 8 gradient steps per iteration, and
    `rl_yaml` (indented `rl:` keys) in its config."""
    from vineppo.runio import append_jsonl

    d = root / name
    d.mkdir()
    for i, acc in enumerate(accs, start=1):
        append_jsonl(d / "metrics.jsonl", {
            "iteration": i, "train/grad_steps": 8 * i, "time/elapsed_s": 10.0 * i, "time/eval_s": 0.0,
            "eval/greedy_accuracy": acc, "time/generation_s": 1.0, "time/value_estimation_s": 1.0,
            "time/training_s": 8.0})
    (d / "config.yaml").write_text("rl:\n  prompts_per_iter: 4\n  samples_per_prompt: 2\n" + rl_yaml)
    (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": 0}))


def test_ppo_runs_with_their_own_value_learning_rate_are_methods_of_their_own(tmp_path):
    """PPO runs with rl.value_learning_rate set are ppo_vlr<rate>, without the value clip ..._noclip,
    with another clip ..._vclip<c>; those at the defaults stay ppo."""
    ce = load_script("compute_efficiency")
    for name, value_lr, clip, accs in (("ppo-s0", None, 0.2, (0.4, 0.5)), ("fast-s0", 0.0003, 0.2, (0.45, 0.7)),
                                       ("fastnoclip-s0", 0.0003, None, (0.5, 0.8)), ("noclip-s0", None, None, (0.3, 0.6)),
                                       ("clip05-s0", None, 0.5, (0.35, 0.55))):
        labelled_run(tmp_path, name, "ppo", f"  value_learning_rate: {'null' if value_lr is None else value_lr}\n"
                                            f"  value_clip: {'null' if clip is None else clip}\n", accs)
    c, splits, _, _ = ce.collect([tmp_path])
    assert set(c["algo"]) == set(splits["algo"]) == {"ppo", "ppo_vlr0.0003", "ppo_vlr0.0003_noclip", "ppo_noclip",
                                                     "ppo_vclip0.5"}
    assert c[c["algo"] == "ppo_vlr0.0003"]["test_accuracy"].tolist() == [0.45, 0.7]
    assert c[c["algo"] == "ppo_vlr0.0003_noclip"]["test_accuracy"].tolist() == [0.5, 0.8]
    # The authors' value head (rl.value_head_init=normal): ppo_headnormal; zero, the default, stays ppo.
    labelled_run(tmp_path, "head-s0", "ppo", "  value_head_init: normal\n", (0.2, 0.3))
    labelled_run(tmp_path, "zero-s0", "ppo", "  value_head_init: zero\n", (0.1, 0.2))
    c, _, _, _ = ce.collect([tmp_path])
    assert c[c["algo"] == "ppo_headnormal"]["test_accuracy"].tolist() == [0.2, 0.3]
    assert sorted(c[c["run"].isin(["zero-s0", "ppo-s0"])]["algo"]) == ["ppo"] * 4


def test_runs_without_whitening_are_methods_of_their_own(tmp_path):
    """rl.whiten_advantages=false adds _nowhiten to any method's name (after vineppo_k<K> and
    ppo_vlr<rate>), so such runs are never averaged with the whitened ones."""
    ce = load_script("compute_efficiency")
    for name, algo, extra, accs in (("ppo-s0", "ppo", "", (0.4, 0.5)),
                                    ("ppo_nw-s0", "ppo", "  whiten_advantages: false\n", (0.45, 0.6)),
                                    ("fast_nw-s0", "ppo", "  whiten_advantages: false\n  value_learning_rate: 0.003\n",
                                     (0.5, 0.65)),
                                    ("k9-s0", "vineppo", "  vine_k: 9\n", (0.5, 0.7)),
                                    ("k3_nw-s0", "vineppo", "  vine_k: 3\n  whiten_advantages: false\n", (0.55, 0.75))):
        labelled_run(tmp_path, name, algo, extra, accs)
    c, splits, _, _ = ce.collect([tmp_path])
    assert set(c["algo"]) == set(splits["algo"]) == {"ppo", "ppo_nowhiten", "ppo_vlr0.003_nowhiten", "vineppo_k9",
                                                     "vineppo_k3_nowhiten"}
    assert c[c["algo"] == "ppo_nowhiten"]["test_accuracy"].tolist() == [0.45, 0.6]
    assert c[c["algo"] == "vineppo_k3_nowhiten"]["test_accuracy"].tolist() == [0.55, 0.75]


@pytest.mark.parametrize(("extra", "claimed"), [(1, False), (8, True)])
def test_speedup_claimed_only_beyond_the_test_sets_noise_where_runs_kept_bits(tmp_path, extra, claimed):
    """Three seeds that agree exactly: the seeds' error is 0 and any gap is 'separated' by it. With
    per-problem bits the gap must also clear the test set's noise: VinePPO right on 1 more of 20
    problems (the same one in every seed) is one problem's luck (se_problems = 0.05 > gap / 2);
    right on 8 more is not (0.11 < 0.4 / 2)."""
    from vineppo.runio import append_jsonl

    ce = load_script("compute_efficiency")
    for algo, more in (("ppo", 0), ("vineppo", extra)):
        for seed in range(3):
            d = tmp_path / f"{algo}-arith-s{seed}"
            d.mkdir()
            bits = {i: "1" * (6 + i + more) + "0" * (14 - i - more) for i in (1, 2, 3)}
            for i, b in bits.items():
                append_jsonl(d / "metrics.jsonl", {
                    "iteration": i, "train/grad_steps": 8 * i, "time/elapsed_s": 10.0 * i, "time/eval_s": 0.0,
                    "eval/greedy_accuracy": b.count("1") / 20, "time/generation_s": 1.0,
                    "time/value_estimation_s": 1.0, "time/training_s": 8.0})
            (d / "eval").mkdir()
            (d / "eval" / "greedy_correct.json").write_text(json.dumps(
                {"problem_ids": [f"p{j}" for j in range(20)], "iterations": {str(i): b for i, b in bits.items()}}))
            (d / "config.yaml").write_text("preset: tiny\n")
            (d / "summary.json").write_text(json.dumps({"algo": algo, "seed": seed}))
    assert ce.main([str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    written = json.loads((tmp_path / "out" / "speedup.json").read_text())
    assert written["separation"]["separated"] is True  # the seeds' error alone
    test_set = written["separation_with_test_set"]
    assert test_set["separated"] is claimed and len(test_set["points"]) == 3
    assert test_set["points"][0]["gap"] == pytest.approx(extra / 20)
    assert (written["speedup"] is not None) is claimed
    assert (written["speedup_if_noise_ignored"] is None) is claimed
    # A run without bits among them: the seeds' rule alone, and no test-set section.
    (tmp_path / "ppo-arith-s0" / "eval" / "greedy_correct.json").unlink()
    assert ce.main([str(tmp_path), "--out", str(tmp_path / "out2")]) == 0
    written = json.loads((tmp_path / "out2" / "speedup.json").read_text())
    assert "separation_with_test_set" not in written and written["speedup"] is not None


def test_sampled_measure_where_every_run_logged_it(tmp_path):
    """--measure auto reads the sampled accuracy (the paper preset's) where every RL run logged it
    at every evaluation, greedy otherwise; the per-problem scores follow the measure."""
    from vineppo.runio import append_jsonl

    ce = load_script("compute_efficiency")
    for seed in (0, 1):
        d = tmp_path / f"vineppo-arith-s{seed}"
        (d / "eval").mkdir(parents=True)
        for i in (1, 2):
            append_jsonl(d / "metrics.jsonl", {"iteration": i, "train/grad_steps": 8 * i, "time/elapsed_s": 10.0 * i,
                                               "eval/greedy_accuracy": 0.5, "eval/sampled_accuracy": 0.25 * i,
                                               "time/generation_s": 1.0, "time/value_estimation_s": 1.0,
                                               "time/training_s": 1.0})
        (d / "config.yaml").write_text("preset: tiny\nrl:\n  prompts_per_iter: 2\n  samples_per_prompt: 2\n")
        (d / "summary.json").write_text(json.dumps({"algo": "vineppo", "seed": seed}))
        (d / "eval" / "sampled_correct.json").write_text(json.dumps(
            {"problem_ids": ["a", "b"], "samples": 4, "iterations": {"1": [1, 1], "2": [2, 2]}}))
    assert ce.choose_measure([tmp_path]) == "sampled" and ce.choose_measure([tmp_path], "greedy") == "greedy"
    c, _, _, bits = ce.collect([tmp_path], "sampled")
    assert c["test_accuracy"].tolist() == [0.25, 0.5, 0.25, 0.5]
    assert bits["vineppo"] == {1: {0: [0.25, 0.25], 1: [0.25, 0.25]}, 2: {0: [0.5, 0.5], 1: [0.5, 0.5]}}
    assert ce.collect([tmp_path], "greedy")[0]["test_accuracy"].tolist() == [0.5] * 4
    records = (tmp_path / "vineppo-arith-s1" / "metrics.jsonl").read_text().splitlines()
    stripped = [json.loads(records[0])] + [{k: v for k, v in json.loads(records[1]).items()
                                            if k != "eval/sampled_accuracy"}]
    (tmp_path / "vineppo-arith-s1" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    assert ce.choose_measure([tmp_path]) == "greedy"  # one evaluation without it: greedy for all
