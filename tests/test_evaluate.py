"""evaluate(): greedy accuracy, unparseable answers, and (generated tasks) the share of greedy
answers whose first wrong step is the controlled flaw, on a scripted engine."""

from vineppo.evaluate import evaluate
from vineppo.inference import Completion

PROBLEMS = [
    {"id": "p0", "question": "q0", "answer": "3", "solution": "19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n#### 3"},
    {"id": "p1", "question": "q1", "answer": "9", "solution": "4 + 5 = 9 rocks.\n#### 9"},
    {"id": "p2", "question": "q2", "answer": "2", "solution": "7 - 5 = 2 rocks.\n#### 2"},
    {"id": "p3", "question": "q3", "answer": "8", "solution": "4 * 2 = 8 rocks.\n#### 8"},
]
ANSWERS = {
    "q0": "19 - 6 = 13 rocks.\n13 - 10 = 3 rocks.\n#### 3",     # right
    "q1": "4 + 5 = 9 rocks.\nso nine",                          # no answer line: unparsed
    "q2": "7 + 5 = 12 rocks.\n#### 12",                         # the flaw
    "q3": "4 * 2 = 9 rocks.\n#### 9",                           # another error
}


class Scripted:
    def generate(self, prompts, params):
        out = []
        for p in prompts:
            q = p.split("Question: ")[1].split("\n")[0]
            out.append([Completion(text=ANSWERS[q], token_ids=[1], logprobs=[0.0], finish_reason="stop")])
        return out


def test_unparsed_and_flawed_shares():
    r = evaluate(Scripted(), PROBLEMS, "arith", progress=False)
    assert r["greedy_accuracy"] == 0.25 and r["greedy_unparsed"] == 0.25 and r["greedy_flawed"] == 0.25
    kinds = [p["first_error_kind"] for p in r["problems"]]
    assert kinds == ["none", "none", "flaw", "other"]  # p1: every step right, the answer line missing


def test_no_flaw_share_against_flawed_references():
    # SFT-pool problems whose written solution carries the flaw are no reference for locating errors.
    flawed = [dict(PROBLEMS[2], solution="7 + 5 = 12 rocks.\n#### 12", flawed_steps=[0])]
    r = evaluate(Scripted(), PROBLEMS[:2] + flawed, "arith", progress=False)
    assert "greedy_flawed" not in r and "first_error_kind" not in r["problems"][2]
    assert "greedy_flawed" not in evaluate(Scripted(), PROBLEMS[:1], "gsm8k", progress=False)


class ScriptedSamples(Scripted):
    """Greedy: ANSWERS; sampled (n per prompt): the i-th sample right where SAMPLED[q][i] is 1."""

    SAMPLED = {"q0": [1, 1, 0, 1], "q1": [0, 0, 0, 0], "q2": [1, 0, 0, 0], "q3": [0, 1, 1, 1]}

    def generate(self, prompts, params):
        if params.temperature == 0:
            return super().generate(prompts, params)
        answer = {"q0": "3", "q1": "9", "q2": "2", "q3": "8"}
        out = []
        for p in prompts:
            q = p.split("Question: ")[1].split("\n")[0]
            out.append([Completion(text=f"#### {answer[q] if ok else -1}", token_ids=[1], logprobs=[0.0],
                                   finish_reason="stop") for ok in self.SAMPLED[q][:params.n]])
        return out


def test_sampled_accuracy_and_pass_at_k_by_hand_and_from_gathered_shares():
    """Sampled accuracy: each problem's share of right samples, averaged (3/4, 0, 1/4, 3/4 -> 7/16);
    pass@4: problems with any right sample (3/4). The same from two processes' shares gathered."""
    from vineppo.evaluate import log_fields, summarise

    r = evaluate(ScriptedSamples(), PROBLEMS, "arith", num_samples=4, progress=False)
    assert r["sampled_accuracy"] == 7 / 16 and r["pass_at_k"] == 0.75 and r["greedy_accuracy"] == 0.25
    halves = [evaluate(ScriptedSamples(), PROBLEMS[i::2], "arith", num_samples=4, progress=False) for i in (0, 1)]
    whole = summarise([p for h in halves for p in h["problems"]])
    assert whole["sampled_accuracy"] == 7 / 16 and whole["pass_at_k"] == 0.75
    assert log_fields(r)["eval/sampled_accuracy"] == 7 / 16 and log_fields(r)["eval/pass_at_k"] == 0.75
    assert "sampled_accuracy" not in evaluate(ScriptedSamples(), PROBLEMS, "arith", progress=False)


def test_correct_bits_follow_the_test_sets_order_and_record_bits_keeps_each_evaluation(tmp_path):
    import json

    import pytest

    from vineppo.evaluate import correct_bits, record_bits

    ids = ["t-0", "t-1", "t-2", "t-3"]
    # Two processes' shares: rank 0 scored t-0 and t-2, rank 1 t-1 and t-3.
    shares = [[{"id": "t-0", "greedy_correct": 1.0}, {"id": "t-2", "greedy_correct": 0.0}],
              [{"id": "t-1", "greedy_correct": 0.0}, {"id": "t-3", "greedy_correct": 1.0}]]
    assert correct_bits(shares) == "1001"
    # Uneven: five problems over two processes (3 and 2), repeated ids allowed (by position).
    five = [[{"id": "x", "greedy_correct": 1.0}] * 3, [{"id": "x", "greedy_correct": 0.0}] * 2]
    assert correct_bits(five) == "10101" and correct_bits([five[0] + five[1]]) == "11100"
    with pytest.raises(ValueError, match=r"shares of \[1, 2\] problems are not a strided split of 3"):
        correct_bits([shares[0][:1], shares[1]])
    path = tmp_path / "eval" / "greedy_correct.json"
    record_bits(path, 2, "1001", ids)
    record_bits(path, 4, "1101", ids)
    record_bits(path, 2, "1000", ids)  # a resumed run evaluating iteration 2 again replaces it
    assert json.loads(path.read_text()) == {"problem_ids": ids, "iterations": {"2": "1000", "4": "1101"}}
    with pytest.raises(ValueError, match="another test set"):
        record_bits(path, 6, "10", ["x-0", "x-1"])


def test_correct_counts_follow_the_test_sets_order_and_keep_the_sample_count(tmp_path):
    """The sampled measure's per-problem scores: each problem's correct samples, in test order from
    two processes' shares; recorded with the sample count, which a resumed run must match."""
    import json

    import pytest

    from vineppo.evaluate import correct_counts, record_bits

    shares = [[{"sampled_correct": [1.0, 1.0, 0.0]}, {"sampled_correct": [0.0, 0.0, 0.0]}],
              [{"sampled_correct": [1.0, 1.0, 1.0]}]]
    assert correct_counts(shares) == [2, 3, 0]
    path = tmp_path / "sampled_correct.json"
    record_bits(path, 10, [2, 3, 0], ["a", "b", "c"], samples=3)
    record_bits(path, 20, [3, 3, 1], ["a", "b", "c"], samples=3)
    assert json.loads(path.read_text()) == {"problem_ids": ["a", "b", "c"], "samples": 3,
                                            "iterations": {"10": [2, 3, 0], "20": [3, 3, 1]}}
    with pytest.raises(ValueError, match="sample count"):
        record_bits(path, 30, [1, 1, 1], ["a", "b", "c"], samples=16)


def test_stop_strings_reach_every_sampling_call(tiny_model_and_tokenizer):
    """task.stop (the prompt format's `stop`) is passed to every generate call: evaluation's greedy
    and sampled ones, an RL iteration's episodes and VinePPO's MC continuations (the engines cut
    the text before it: tests/test_inference.py)."""
    from vineppo.config import make_config
    from vineppo.inference import HFEngine
    from vineppo.loop import generate_shard
    from vineppo.tasks import PromptFormat

    model, tok = tiny_model_and_tokenizer
    fmt = PromptFormat(stop=("\n\n\nProblem:",))
    asked = []

    class Recording(HFEngine):
        def generate(self, prompts, params):
            asked.append(params.stop)
            return super().generate(prompts, params)

    engine = Recording(model, tok)
    evaluate(engine, PROBLEMS[:2], "gsm8k", max_new_tokens=8, num_samples=2, progress=False, fmt=fmt)
    assert asked == [["\n\n\nProblem:"]] * 2
    asked.clear()
    rl = make_config(["rl.algo=vineppo", "rl.samples_per_prompt=2", "rl.max_new_tokens=8", "rl.vine_k=2"]).rl
    generate_shard(engine, tok, PROBLEMS[:2], 0, rl, "gsm8k", 0, lambda items: [0.0] * len(items), fmt)
    assert len(asked) == 2 and asked == [["\n\n\nProblem:"]] * 2  # the episodes, then the MC continuations
    asked.clear()
    evaluate(engine, PROBLEMS[:1], "gsm8k", max_new_tokens=8, progress=False)
    assert asked == [[]]  # none by default
