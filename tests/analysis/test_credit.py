"""Credit assignment where the wrong step is known: step advantages, blame share (hand-worked),
line/step offsets, and the dial's accuracy-by-length and VinePPO - PPO gap on fabricated runs."""

import importlib.util
import json
from pathlib import Path

import pytest

from vineppo.analysis.credit import (
    accuracy_by_length,
    blame_share,
    blame_share_before_last,
    bucket_of,
    line_start,
    mean_and_se,
    num_steps,
    step_advantages,
    step_of_offset,
)
from vineppo.config import make_config, to_yaml
from vineppo.steps import step_boundaries
from vineppo.tasks import load_task
from vineppo.tasks.arith import first_error

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("credit_assignment", ROOT / "analysis" / "credit_assignment.py")
credit_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(credit_script)


def test_step_advantages_and_blame_hand_worked():
    # States before steps 0, 1, 2 valued 0.5, 0.6, 0.1; the response scores 0.
    adv = step_advantages([0.5, 0.6, 0.1], 0.0)
    assert adv == pytest.approx([0.1, -0.5, -0.1])
    assert blame_share(adv, 1) == 1.0 and blame_share(adv, 2) == 0.0
    # Every step tied (GRPO's one advantage per response): chance, 1 / steps.
    assert blame_share([0.0] * 4, 3) == 0.25
    assert blame_share([-1.0, -1.0, 0.0], 0) == 0.5 and blame_share([-1.0, -1.0, 0.0], 2) == 0.0
    with pytest.raises(ValueError, match="outside"):
        blame_share([0.0], 1)


def test_blame_before_the_last_step_hand_worked():
    # A value network that barely moves (0.60, 0.58, 0.62) on a wrong response: the reward of 0
    # arrives at the last step, which takes the blame; before it, the dip after step 0 is the most
    # negative advantage (0.58 - 0.60 = -0.02 against 0.62 - 0.58 = +0.04).
    adv = step_advantages([0.60, 0.58, 0.62], 0.0)
    assert adv == pytest.approx([-0.02, 0.04, -0.62])
    assert blame_share(adv, 0) == 0.0 and blame_share_before_last(adv, 0) == 1.0
    assert blame_share_before_last(adv, 1) == 0.0
    assert blame_share_before_last(adv, 2) is None  # the wrong step is the last: nothing to ask
    assert blame_share_before_last([0.0] * 4, 1) == pytest.approx(1 / 3)  # tied: chance over 3 steps


def test_wrong_line_maps_to_its_step():
    ref = "19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n3 * 3 = 9 rocks.\n#### 9"
    got = "19 - 6 = 13 rocks.\n13 + 10 = 23 rocks.\n23 * 3 = 69 rocks.\n#### 69"
    line, kind = first_error(got, ref)
    bounds = step_boundaries(got, "arith")
    assert (line, kind) == (1, "flaw") and line_start(got, line) == 19
    assert step_of_offset(bounds, line_start(got, line)) == 1
    assert line_start(got, 5) is None
    hard = "$15 + 8 = 23$ grams.\n$23 \\times 4 = 92$ grams.\nThe answer is $\\boxed{92}$."
    assert line_start(hard, 1) == len("$15 + 8 = 23$ grams.\n")
    assert num_steps(ref) == 3 and num_steps(hard) == 2


def test_buckets_and_standard_error():
    assert [bucket_of(n) for n in (1, 2, 3, 4, 6, 7, 9, 10)] == [None, "2-3", "2-3", "4-6", "4-6", "7-9", "7-9", None]
    m, se = mean_and_se([0.2, 0.4, 0.6])
    assert m == pytest.approx(0.4) and se == pytest.approx(0.2 / 3 ** 0.5)
    assert mean_and_se([0.3]) == (0.3, 0.0)
    problems = [{"id": "a", "greedy_correct": 1.0}, {"id": "b", "greedy_correct": 0.0}, {"id": "c", "greedy_correct": 1.0}]
    df = accuracy_by_length(problems, {"a": 2, "b": 3, "c": 8}).set_index("bucket")
    assert df.loc["2-3", "accuracy"] == 0.5 and df.loc["7-9", "accuracy"] == 1.0 and df.loc["2-3", "problems"] == 2


def test_dial_on_fabricated_runs(tmp_path):
    overrides = ["task.min_steps=2", "task.max_steps=9", "task.num_test=60", "task.num_train=10"]
    test = load_task(make_config(overrides).task).test
    long_ids = {e["id"] for e in test if num_steps(e["solution"]) >= 7}
    assert long_ids and len(long_ids) < len(test)

    def fake(name, algo, seed, correct):
        d = tmp_path / name
        (d / "eval").mkdir(parents=True)
        (d / "config.yaml").write_text(to_yaml(make_config(overrides + [f"rl.algo={algo}", f"seed={seed}"])))
        problems = [{"id": e["id"], "greedy_correct": float(correct(e["id"]))} for e in test]
        (d / "eval" / "test.json").write_text(json.dumps({"problems": problems}))

    fake("sft-arith", "ppo", 0, lambda i: False)
    for s in range(3):  # PPO solves every short chain; VinePPO the long ones too on seeds 0 and 1
        fake(f"ppo-arith-s{s}", "ppo", s, lambda i: i not in long_ids)
        fake(f"vineppo-arith-s{s}", "vineppo", s, lambda i, s=s: i not in long_ids or s < 2)
    out = tmp_path / "out"
    assert credit_script.main(["dial", str(tmp_path), "--out", str(out)]) == 0
    gap = credit_script.pd.read_csv(out / "gap.csv").set_index("bucket").to_dict("index")
    assert gap["2-3"]["gap"] == 0.0 and gap["2-3"]["sft_mean"] == 0.0
    assert gap["7-9"]["gap"] == pytest.approx(2 / 3)
    # PPO's seeds agree (s.e. 0); VinePPO's long-chain accuracies 1, 1, 0: std sqrt(1/3), s.e. 1/3.
    assert gap["7-9"]["gap_se"] == pytest.approx(1 / 3)
    assert (out / "dial.png").exists()
    assert credit_script.main(["dial", str(tmp_path / "sft-arith"), "--out", str(out)]) == 2
    # Against GRPO runs that solve everything on every seed: VinePPO behind on long chains by 1/3.
    for s in range(3):
        fake(f"grpo-arith-s{s}", "grpo", s, lambda i: True)
    assert credit_script.main(["dial", str(tmp_path), "--baseline", "grpo", "--out", str(out / "grpo")]) == 0
    gap = credit_script.pd.read_csv(out / "grpo" / "gap.csv").set_index("bucket").to_dict("index")
    assert gap["7-9"]["grpo_mean"] == 1.0 and gap["7-9"]["gap"] == pytest.approx(-1 / 3)
    assert gap["7-9"]["gap_se"] == pytest.approx(1 / 3) and "ppo_mean" not in gap["7-9"]
    assert credit_script.main(["dial", str(tmp_path), "--baseline", "rloo", "--out", str(out / "rloo")]) == 2


@pytest.mark.slow
def test_blame_on_smoke_ppo_run(smoke_runs, tmp_path):
    import pandas as pd

    out = tmp_path / "blame"
    rc = credit_script.main(["blame", str(smoke_runs / "ppo-arith-s0"), "--problems", "6", "--k", "2",
                             "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out / "blame.csv")
    assert len(df) and (df["wrong_step"] < df["steps"]).all()
    assert (df["GRPO (one advantage per response)"] == 1 / df["steps"]).all()  # every step tied
    for col in ("MC K=2", "value network"):
        assert df[col].between(0, 1).all()
    # A share of 1 means the estimator's most negative step is the wrong one.
    hit = df["value network"] == 1.0
    assert (df.loc[hit, "value_net_most_negative_step"] == df.loc[hit, "wrong_step"]).all()
    # Before the last step: tied advantages give chance over the other steps; none where the wrong
    # step is the last.
    last = df["wrong_step"] == df["steps"] - 1
    grpo = df["GRPO (one advantage per response), before the last step"]
    assert grpo[last].isna().all() and (grpo[~last] == 1 / (df["steps"][~last] - 1)).all()
    summary = pd.read_csv(out / "blame_summary.csv")
    assert set(summary["kind"]) >= {"all"} and (summary["se"] >= 0).all()
    # Two runs pooled: a copy of the same run (same seed) doubles the responses and leaves every
    # share as it was, with no spread between the runs.
    import shutil

    twin = tmp_path / "ppo-arith-s1"
    shutil.copytree(smoke_runs / "ppo-arith-s0", twin)
    out2 = tmp_path / "blame2"
    assert credit_script.main(["blame", str(smoke_runs / "ppo-arith-s0"), str(twin), "--problems", "6",
                               "--k", "2", "--out", str(out2)]) == 0
    pooled = pd.read_csv(out2 / "blame_summary.csv")
    assert (pooled["responses"] == 2 * summary["responses"]).all() and (pooled["runs"] == 2).all()
    assert pooled["blame_share"].tolist() == pytest.approx(summary["blame_share"].tolist(), nan_ok=True)
    assert (pooled["run_std"].dropna() == 0).all()
    assert sorted(pd.read_csv(out2 / "blame.csv")["run"].unique()) == ["ppo-arith-s0", "ppo-arith-s1"]
    assert credit_script.main(["blame", str(smoke_runs / "vineppo-arith-s0"), "--out", str(out)]) == 2


def test_blame_summary_pools_runs_and_adds_the_position_reference():
    """blame_summary by hand: two runs, four wrong responses. Step 1 is the most common wrong step
    (3 of 4), so always blaming it scores 0.75 without reading any value."""
    import pandas as pd

    df = pd.DataFrame({
        "run": ["a", "a", "b", "b"], "kind": ["flaw", "flaw", "flaw", "other"], "steps": [4, 4, 3, 3],
        "wrong_step": [1, 1, 0, 1], "value network": [1.0, 0.0, 0.0, 0.0],
        "value network, before the last step": [1.0, 1.0, 0.5, None]})
    s = credit_script.blame_summary(df).set_index(["kind", "estimator"])
    assert s.loc[("all", "value network"), "blame_share"] == 0.25
    assert s.loc[("all", "value network"), "se"] == pytest.approx((0.25 * 0.75 / 4) ** 0.5)
    # run a: 0.5, run b: 0.0 -> std over runs 0.5 / sqrt(2)
    assert s.loc[("all", "value network"), "run_std"] == pytest.approx(0.5 / 2 ** 0.5)
    assert s.loc[("all", "value network"), "runs"] == 2
    # Before the last step: the response without a share is left out (3 counted).
    assert s.loc[("all", "value network, before the last step"), "blame_share"] == pytest.approx(2.5 / 3)
    assert s.loc[("all", "value network, before the last step"), "responses"] == 3
    pos = credit_script.POSITION
    assert s.loc[("all", pos), "blame_share"] == 0.75 and s.loc[("all", pos), "responses"] == 4
    # Within the flaw responses steps 1 (twice) and 0 (once): step 1 again, 2 of 3.
    assert s.loc[("flaw", pos), "blame_share"] == pytest.approx(2 / 3)
    # A tie (kind "other" has one response) picks the smallest step: hit.
    assert s.loc[("other", pos), "blame_share"] == 1.0
    hit = credit_script.most_common_hit(pd.Series([2, 0, 0, 2, None])).tolist()  # 0 and 2 tie: 0
    assert hit[:4] == [0.0, 1.0, 1.0, 0.0] and hit[4] != hit[4]  # NaN where there is no wrong step
