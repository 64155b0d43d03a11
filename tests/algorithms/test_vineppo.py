"""VinePPO's MC values with a fake policy of known success probabilities, and token/step alignment."""

import random

import pytest
import torch

from vineppo.algorithms.vineppo import assign_advantages, estimate_values
from vineppo.grading import grade
from vineppo.inference import Completion, SamplingParams
from vineppo.rollout import Episode, collate_episodes, token_char_starts, token_step_index


class FakeEngine:
    """Continues a prefix with a correct answer with probability p(prefix), else a wrong one."""

    def __init__(self, success: dict[str, float]):
        self.success, self.calls = success, []

    def generate(self, prompts, params):
        self.calls.append(list(prompts))
        rng = random.Random(params.seed)
        out = []
        for p in prompts:
            prob = self.success[p]
            out.append([Completion("#### 7" if rng.random() < prob else "#### 8", [], [], "stop")
                        for _ in range(params.n)])
        return out


def reward_fn(items):
    return [grade(prefix + cont.text, example["answer"], "arith") for prefix, cont, example in items]


def test_mc_value_converges_to_success_probability():
    ex = {"answer": "7"}
    success = {"Q:a": 0.2, "Q:ab": 0.5, "Q:abc": 0.9}
    states = [("Q:", "a", ex), ("Q:", "ab", ex), ("Q:", "abc", ex)]
    errors = {}
    for k in (4, 64, 4096):
        values = estimate_values(states, FakeEngine(success), k, SamplingParams(seed=1), reward_fn)
        errors[k] = max(abs(v - p) for v, p in zip(values, success.values(), strict=True))
    assert errors[4096] < 0.03
    assert errors[4096] < errors[4]


def test_identical_states_estimated_once():
    ex = {"answer": "7"}
    engine = FakeEngine({"Q:a": 1.0, "Q:b": 0.0})
    values = estimate_values([("Q:", "a", ex), ("Q:", "b", ex), ("Q:", "a", ex)], engine, 3,
                             SamplingParams(seed=0), reward_fn)
    assert values == [1.0, 0.0, 1.0]
    assert engine.calls == [["Q:a", "Q:b"]]


def test_alignment_tokens_to_steps(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    response = "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n#### 14"
    ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    starts = token_char_starts(tok, ids)
    # Each token's start offset, then its decoded text, reproduces the response exactly.
    pieces = [tok.decode([i], skip_special_tokens=True) for i in ids]
    assert "".join(pieces) == response
    assert starts == [sum(len(p) for p in pieces[:i]) for i in range(len(ids))]
    steps = token_step_index(starts, [0, 18, 37])
    text_of_step = ["", "", ""]
    for piece, s in zip(pieces, steps, strict=True):
        text_of_step[s] += piece
    assert text_of_step == ["3 + 4 = 7 apples.\n", "7 * 2 = 14 apples.\n", "#### 14"]


def test_step_advantages_reach_every_token(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    prompt = "Q:"
    response = "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n#### 14"
    ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ex = {"answer": "14"}
    # V(s0) = 0.25, V(s1) = 0.5, V(s2) = 1.0; reward 1 -> A = [0.25, 0.5, 0.0]
    engine = FakeEngine({"Q:": 0.25, "Q:3 + 4 = 7 apples.\n": 0.5,
                         "Q:3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n": 1.0})

    def reward(items):
        return [1.0 if cont.text == "#### 7" else 0.0 for _, cont, _ in items]

    ep = Episode(0, ex, prompt, [1], ids, response, "stop", 1.0)
    assign_advantages([ep], engine, tok, "arith", k=4000, max_steps=25, params=SamplingParams(seed=3),
                      reward_fn=reward)
    steps = token_step_index(token_char_starts(tok, ids), [0, 18, 37])
    expected = {0: 0.25, 1: 0.5, 2: 0.0}
    assert len(ep.advantages) == len(ep.values) == len(ids)
    for a, s in zip(ep.advantages, steps, strict=True):
        assert a == pytest.approx(expected[s], abs=0.04)
    # Each token also carries the value of the state its step starts from (for value/explained_variance).
    for v, s in zip(ep.values, steps, strict=True):
        assert v == pytest.approx({0: 0.25, 1: 0.5, 2: 1.0}[s], abs=0.04)
    batch = collate_episodes([ep], pad_id=0)
    assert torch.equal(batch["mc_values"][batch["mask"].bool()], torch.tensor(ep.values))
    # A cap of 1 estimated step: later states take the trajectory's return (1.0).
    assign_advantages([ep], engine, tok, "arith", k=4000, max_steps=1, params=SamplingParams(seed=3),
                      reward_fn=reward)
    expected = {0: 0.75, 1: 0.0, 2: 0.0}
    for a, s in zip(ep.advantages, steps, strict=True):
        assert a == pytest.approx(expected[s], abs=0.04)


def test_step_rules_set_the_states(tiny_model_and_tokenizer):
    """`response`: one state, every token gets R - V(prompt); a regex that also cuts after each
    line's first operand: the operand's tokens get V(after it) - V(before it)."""
    _, tok = tiny_model_and_tokenizer
    response = "3 + 4 = 7 apples.\n7 * 2 = 14 apples.\n#### 14"
    ids = tok(response, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    l1 = "3 + 4 = 7 apples.\n"
    success = {"Q:": 0.25, "Q:3": 0.25, f"Q:{l1}": 0.5, f"Q:{l1}7": 0.75,
               f"Q:{l1}7 * 2 = 14 apples.\n": 1.0}
    engine = FakeEngine(success)

    def reward(items):
        return [1.0 if cont.text == "#### 7" else 0.0 for _, cont, _ in items]

    ep = Episode(0, {"answer": "14"}, "Q:", [1], ids, response, "stop", 1.0)
    stats = assign_advantages([ep], engine, tok, "arith", k=4000, max_steps=25, params=SamplingParams(seed=3),
                              reward_fn=reward, rule="response")
    assert engine.calls == [["Q:"]] and stats["vine/num_states"] == 1.0
    assert ep.advantages == pytest.approx([0.75] * len(ids), abs=0.04)

    rule = r"regex:(?m)\n|^\d+(?= )"
    engine.calls.clear()
    assign_advantages([ep], engine, tok, "arith", k=4000, max_steps=25, params=SamplingParams(seed=3),
                      reward_fn=reward, rule=rule)
    assert engine.calls == [list(success)]
    offsets = [0, 1, 18, 19, 37]
    steps = token_step_index(token_char_starts(tok, ids), offsets)
    expected = [0.0, 0.25, 0.25, 0.25, 0.0]  # V(next) - V(this); the last step: R - V = 0
    for a, s in zip(ep.advantages, steps, strict=True):
        assert a == pytest.approx(expected[s], abs=0.04)
    assert sorted(set(steps)) == [0, 1, 2, 3, 4]
