"""Gap noise over seeds and test problems: a hand-worked case, unbiasedness against simulation of
the crossed model it assumes, and agreement with the paired s.e. the other analyses use."""

import math

import numpy as np
import pandas as pd
import pytest

from vineppo.analysis.test_noise import gap_noise, paired_matrix, two_in_a_row


def test_hand_worked_two_by_two():
    # d = [[1, 0], [0, 0]]: gap 1/4; seed means (1/2, 0) and problem means (1/2, 0) each have
    # variance 1/8 (ddof 1), so se_seeds^2 = se_problems^2 = 1/16; residuals +-1/4, MS_e = 4/16 / 1
    # = 1/4, and se_both^2 = 1/16 + 1/16 - (1/4) / 4 = 1/16.
    n = gap_noise(np.array([[1, 0], [0, 0]]))
    assert n["gap"] == 0.25 and n["se_seeds"] == 0.25 and n["se_problems"] == 0.25 and n["se_both"] == 0.25
    assert n["discordant"] == 0.25 and (n["seeds"], n["problems"]) == (2, 2)


def test_pure_seed_or_problem_effects():
    # Every problem moves together within a seed: all the noise is the seeds', none the problems'
    # beyond it (each problem sees the same seeds).
    d = np.repeat(np.array([[0.0], [1.0], [1.0], [0.0]]), 50, axis=1)
    n = gap_noise(d)
    assert n["se_problems"] == 0.0 and n["se_both"] == pytest.approx(n["se_seeds"]) == pytest.approx(math.sqrt(1 / 12))
    # Every seed agrees and the gap comes from a few problems: the seeds see no noise at all, the
    # test set does (5 of 50 problems, a binomial-like s.e.).
    d = np.zeros((4, 50))
    d[:, :5] = 1
    n = gap_noise(d)
    assert n["se_seeds"] == 0.0 and n["gap"] == 0.1
    assert n["se_both"] == pytest.approx(n["se_problems"]) == pytest.approx(math.sqrt(0.1 * 0.9 * 50 / 49 / 50))


def test_unbiased_for_the_crossed_model():
    """d = gap + a[s] + b[i] + e[s, i] with known variances: the mean of se_both^2 over many draws
    is the variance of the gap's estimate (the seeds' error alone misses the problems' part)."""
    rng = np.random.default_rng(0)
    S, N, sa, sb, se = 4, 60, 0.05, 0.3, 0.5
    truth = sa ** 2 / S + sb ** 2 / N + se ** 2 / (S * N)
    gaps, both, seeds_only = [], [], []
    for _ in range(4000):
        d = 0.02 + rng.normal(0, sa, (S, 1)) + rng.normal(0, sb, (1, N)) + rng.normal(0, se, (S, N))
        n = gap_noise(d)
        gaps.append(n["gap"])
        both.append(n["se_both"] ** 2)
        seeds_only.append(n["se_seeds"] ** 2)
    assert np.var(gaps) == pytest.approx(truth, rel=0.08)
    # Unbiased but for the floor at the larger one-way error (here the seeds' part is small, so the
    # floor is hit in about half the draws): a few percent conservative, never below the truth.
    assert truth * 0.98 < np.mean(both) < truth * 1.10
    assert np.mean(seeds_only) < 0.6 * truth


def test_se_seeds_is_the_paired_se_over_seeds():
    rng = np.random.default_rng(1)
    a = {s: "".join(rng.choice(["0", "1"], 40, p=[0.3, 0.7])) for s in range(5)}
    b = {s: "".join(rng.choice(["0", "1"], 40, p=[0.4, 0.6])) for s in range(1, 6)}
    d, seeds = paired_matrix(a, b)
    assert seeds == [1, 2, 3, 4] and d.shape == (4, 40)
    per_seed = pd.Series([(a[s].count("1") - b[s].count("1")) / 40 for s in seeds])
    n = gap_noise(d)
    assert n["gap"] == pytest.approx(per_seed.mean())
    assert n["se_seeds"] == pytest.approx(per_seed.std(ddof=1) / 2)
    assert math.isnan(gap_noise(d[:1])["se_both"]) and gap_noise(d[:1])["se_problems"] > 0


def test_sampled_scores_pair_like_bits(tmp_path):
    """The sampled measure's per-problem shares of correct samples pair as bits do: hand-worked
    differences; bits '0'/'1' and shares 0.0/1.0 give the same matrix. run_bits reads them from
    eval/sampled_correct.json as counts over the recorded sample count."""
    import json

    from vineppo.analysis.test_noise import run_bits

    d, seeds = paired_matrix({0: [0.5, 1.0, 0.25], 1: [0.0, 0.75, 1.0]}, {0: [0.25, 1.0, 0.5], 1: [0.0, 0.5, 0.5]})
    assert seeds == [0, 1] and d.tolist() == [[0.25, 0.0, -0.25], [0.0, 0.25, 0.5]]
    assert gap_noise(d)["gap"] == pytest.approx(0.75 / 6)
    assert paired_matrix({0: "101"}, {0: "011"})[0].tolist() == paired_matrix({0: [1.0, 0.0, 1.0]},
                                                                              {0: [0.0, 1.0, 1.0]})[0].tolist()
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "sampled_correct.json").write_text(json.dumps(
        {"problem_ids": ["a", "b"], "samples": 4, "iterations": {"5": [1, 4], "10": [2, 3]}}))
    assert run_bits(tmp_path, "sampled") == {5: [0.25, 1.0], 10: [0.5, 0.75]}
    assert run_bits(tmp_path) is None  # no greedy bits kept
    (tmp_path / "eval" / "sampled_correct.json").write_text(json.dumps({"iterations": {"5": [1, 4]}}))
    with pytest.raises(ValueError, match="not a sampled_correct.json"):
        run_bits(tmp_path, "sampled")


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="share no seed"):
        paired_matrix({0: "01"}, {1: "01"})
    with pytest.raises(ValueError, match=r"different lengths \[2, 3\]"):
        paired_matrix({0: "01"}, {0: "011"})
    with pytest.raises(ValueError, match="seeds x problems"):
        gap_noise(np.zeros(5))


def test_two_in_a_row():
    pts = [(1, 0.03, 0.01), (2, 0.01, 0.01), (3, 0.03, 0.01), (4, 0.04, 0.01), (5, -0.05, 0.01)]
    assert two_in_a_row(pts) == {"separated": True, "ahead": 1, "at": [[3, 4]]}
    assert two_in_a_row(pts[:3])["separated"] is False
    crossing = pts + [(6, -0.05, 0.01)]
    assert two_in_a_row(crossing) == {"separated": True, "ahead": 0, "at": [[3, 4], [5, 6]]}
    assert two_in_a_row([(1, 0.1, float("nan")), (2, 0.1, float("nan"))])["separated"] is False


def test_run_bits(tmp_path):
    from vineppo.analysis.test_noise import run_bits

    assert run_bits(tmp_path) is None  # a run from before the bits were kept
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "greedy_correct.json").write_text('{"problem_ids": ["a"], "iterations": {"2": "1", "4": "0"}}')
    assert run_bits(tmp_path) == {2: "1", 4: "0"}
    (tmp_path / "eval" / "greedy_correct.json").write_text('{"problem_ids": ["a"]}')
    with pytest.raises(ValueError, match=r"greedy_correct.json: not a greedy_correct.json"):
        run_bits(tmp_path)
