"""Ranking accuracy, MAE, calibration and position error against hand-worked cases; states and
alternative steps cut by each step rule."""

import math

import pytest

from vineppo.analysis.value_quality import (
    State,
    alternative_steps,
    calibration,
    error_by_position,
    held_out_states,
    mc_values,
    mean_absolute_error,
    pairwise_ranking,
    ranking_accuracy,
)


def test_pairwise_ranking_hand_worked():
    # truth 0.9 > 0.5 > 0.1; prediction gets (0,1) and (0,2) right, (1,2) wrong.
    assert pairwise_ranking([0.8, 0.2, 0.3], [0.9, 0.5, 0.1]) == (2, 3)
    # A tie in truth is wrong whatever the prediction; a tie in prediction on a real difference too.
    assert pairwise_ranking([0.1, 0.9], [0.5, 0.5]) == (0, 1)
    assert pairwise_ranking([0.4, 0.4], [0.2, 0.7]) == (0, 1)
    # Four alternatives, truth [1, .5, .5, 0]: 6 pairs, one tied; a perfect predictor gets the other 5.
    assert pairwise_ranking([0.9, 0.6, 0.4, 0.1], [1.0, 0.5, 0.5, 0.0]) == (5, 6)


def test_oracle_and_constant_predictors():
    truth = [[0.9, 0.1, 0.5], [0.2, 0.6, 0.7, 0.0], [1.0, 0.3]]
    assert ranking_accuracy(truth, truth) == 1.0
    assert ranking_accuracy([[0.5] * len(g) for g in truth], truth) == 0.0
    reversed_pred = [[-x for x in g] for g in truth]
    assert ranking_accuracy(reversed_pred, truth) == 0.0
    # Pooled over groups: 3 + 6 + 1 = 10 pairs; getting only the last group right is 1/10.
    assert ranking_accuracy([[0.5] * 3, [0.5] * 4, [0.9, 0.1]], truth) == pytest.approx(0.1)


def test_untied_only_ranking_hand_worked():
    # Truth [1, .5, .5, 0] has 6 pairs, 1 tied. Over all pairs an oracle scores 5/6; over the 5
    # untied pairs it scores 1, a reversed predictor 0, and the prediction below 3/5.
    truth = [[1.0, 0.5, 0.5, 0.0]]
    assert ranking_accuracy(truth, truth) == pytest.approx(5 / 6)
    assert ranking_accuracy(truth, truth, untied_only=True) == 1.0
    assert ranking_accuracy([[-x for x in truth[0]]], truth, untied_only=True) == 0.0
    # pred orders 0 > 2 > 1 > 3: all 5 untied pairs agree; the tied pair (1, 2) is not counted.
    assert ranking_accuracy([[0.9, 0.3, 0.4, 0.1]], truth, untied_only=True) == 1.0
    # pred 0.2, 0.9, 0.5, 0.1: (0,1) wrong, (0,2) wrong, (0,3) right, (1,3) right, (2,3) right -> 3/5.
    assert ranking_accuracy([[0.2, 0.9, 0.5, 0.1]], truth, untied_only=True) == pytest.approx(3 / 5)
    assert math.isnan(ranking_accuracy([[0.1, 0.2]], [[0.5, 0.5]], untied_only=True))  # all tied


def test_ranking_matches_brute_force_on_random_cases():
    import random

    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(2, 5)
        truth = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]
        pred = [rng.random() for _ in range(n)]
        pairs = [(i, j) for i in range(n) for j in range(n) if i < j]
        expected = sum(1 for i, j in pairs if truth[i] != truth[j] and
                       ((truth[i] > truth[j]) == (pred[i] > pred[j])))
        assert pairwise_ranking(pred, truth) == (expected, len(pairs))
    assert math.isnan(ranking_accuracy([[0.3]], [[0.5]]))  # one alternative: no pairs


def test_mae_calibration_and_position():
    assert mean_absolute_error([0.5, 1.0, 0.0], [0.0, 1.0, 1.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="equal, non-empty"):
        mean_absolute_error([0.1], [])
    cal = calibration([0.05, 0.15, 0.12, 0.95, 1.0], [0.0, 1.0, 0.0, 1.0, 1.0], bins=10)
    assert cal["bin"].tolist() == [0, 1, 9]
    assert cal["mean_truth"].tolist() == [0.0, 0.5, 1.0] and cal["count"].tolist() == [1, 2, 2]
    pos = error_by_position([0.5, 0.5, 0.9], [0.0, 1.0, 1.0], [0.0, 0.5, 0.99], bins=2)
    assert pos["mae"].tolist() == pytest.approx([0.5, 0.3]) and pos["count"].tolist() == [1, 2]


class ScriptedEngine:
    """Returns the given texts, in turn, for every prompt."""

    def __init__(self, texts):
        self.texts, self.calls = texts, []

    def generate(self, prompts, params):
        from vineppo.inference import Completion
        self.calls.append(params)
        return [[Completion(t, [], [], "stop") for t in self.texts[:params.n]] for _ in prompts]


def test_states_and_alternatives_follow_the_step_rule():
    text = "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n#### 14"
    ex = [{"question": "q", "answer": "14"}]
    by_rule = {rule: [s.prefix for s in held_out_states(ScriptedEngine([text]), ex, "arith", 0.6, 64, 0, rule,
                                                               top_p=0.9)]
               for rule in ("auto", "response", r"regex:(?m)\n|^\d+(?= )")}
    assert by_rule == {"auto": ["", "3 + 4 = 7 apples.\n", "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n"],
                       "response": [""],
                       r"regex:(?m)\n|^\d+(?= )": ["", "3", "3 + 4 = 7 apples.\n", "3 + 4 = 7 apples.\n7",
                                                  "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n"]}
    state = State("Q:", "", ex[0], 0.0)
    engine = ScriptedEngine(["3 + 4 = 7 a.\n#### 7", "3 - 4 = 1 a.\n#### 1", "3 + 4 = 7 b.\n#### 7"] * 4)
    alts = lambda rule: [s.prefix for s in alternative_steps(engine, state, 3, "arith", 0.6, 64, 0, rule, top_p=0.9)]  # noqa: E731
    assert alts("auto") == ["3 + 4 = 7 a.\n", "3 - 4 = 1 a.\n", "3 + 4 = 7 b.\n"]
    assert alts(r"regex:(?m)\n|^\d+(?= )") == ["3"]  # every continuation starts with the same step


def test_every_sample_is_drawn_with_the_runs_sampler():
    """The states, the alternative next steps, the MC estimates and the ground truth are all sampled
    as the run sampled (rl.temperature and rl.top_p, the task's stop strings): the values its
    estimators predict are those of that sampler. Each function takes top_p by name, so no caller
    can leave it at 1.0 unsaid."""
    import inspect

    engine = ScriptedEngine(["3 + 4 = 7 a.\n#### 7", "3 - 4 = 1 a.\n#### 1"] * 8)
    ex = [{"question": "q", "answer": "7"}]
    states = held_out_states(engine, ex, "arith", 0.6, 64, 0, top_p=0.9)
    alternative_steps(engine, states[0], 2, "arith", 0.6, 64, 1, stop=("\n\n",), top_p=0.9)
    assert mc_values(engine, states, 2, "arith", 0.6, 64, 2, ("\n\n",), top_p=0.9) == [0.5, 0.5]
    assert [(p.temperature, p.top_p) for p in engine.calls] == [(0.6, 0.9)] * 3
    assert [p.stop for p in engine.calls[1:]] == [["\n\n"]] * 2
    for f in (held_out_states, alternative_steps, mc_values):
        assert inspect.signature(f).parameters["top_p"].default is inspect.Parameter.empty, f.__name__
