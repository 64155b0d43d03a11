"""vineppo.analysis.probe: fixed inputs cut before each number of a reference solution."""

import math
from types import SimpleNamespace

import pytest
import torch

from vineppo.analysis.probe import Probe, first_value, probe_errors, probes
from vineppo.inference import Completion
from vineppo.tasks import PROMPT

EX = {"question": "Ann has 25 beads. She loses 10. It triples.",
      "solution": "25 - 10 = 15 beads.\n15 * 3 = 45 beads.\n#### 45"}


def test_probes_cut_before_each_result_and_carried_value():
    base = PROMPT.format(question=EX["question"])
    assert probes([EX]) == [
        Probe(base + "25 - 10 =", "15", "arithmetic", "sub"),
        Probe(base + "25 - 10 = 15 beads.\n", "15", "copy"),
        Probe(base + "25 - 10 = 15 beads.\n15 * 3 =", "45", "arithmetic", "mul"),
    ]
    boxed = {"question": "q", "solution": "$7 \\div 2 = \\frac{7}{2}$ cups.\n$\\frac{7}{2} + 1 = \\frac{9}{2}$ cups.\n"
                                          "The answer is $\\boxed{\\frac{9}{2}}$."}
    got = probes([boxed])
    assert [(p.target, p.kind, p.op) for p in got] == [
        ("\\frac{7}{2}", "arithmetic", "div"), ("\\frac{7}{2}", "copy", None), ("\\frac{9}{2}", "arithmetic", "add")]
    assert got[2].prompt.endswith("cups.\n$\\frac{7}{2} + 1 =")


def test_first_value():
    assert first_value(" 15 beads.") == "15"
    assert first_value("15 * 3 = 45") == "15"
    assert first_value("$\\frac{7}{2} + 1 = 4$") == "\\frac{7}{2}"
    assert first_value(" \\frac{9}{2}$ cups.") == "\\frac{9}{2}"
    assert first_value(" 45.") == "45"
    assert first_value("") == ""


class Scripted:
    """An engine that writes a fixed continuation per prompt."""

    def __init__(self, texts):
        self.texts = texts

    def generate(self, prompts, params):
        assert params.temperature == 0.0 and params.n == 1
        return [[Completion(self.texts[p], [], [], "stop")] for p in prompts]


def test_probe_errors_count_per_kind_and_operation():
    items = probes([EX])
    right = Scripted({items[0].prompt: " 15 beads.", items[1].prompt: "15 * 3", items[2].prompt: " 45 beads."})
    assert probe_errors(right, items) == {"probe_arithmetic": 0.0, "probe_arithmetic_mul": 0.0,
                                          "probe_arithmetic_sub": 0.0, "probe_copy": 0.0}
    stutter = Scripted({items[0].prompt: " 16 beads.", items[1].prompt: "155 * 3", items[2].prompt: " 45 beads."})
    assert probe_errors(stutter, items) == pytest.approx({"probe_arithmetic": 0.5, "probe_arithmetic_mul": 0.0,
                                                          "probe_arithmetic_sub": 1.0, "probe_copy": 1.0})


def test_copy_states_cut_after_each_carried_value():
    from vineppo.analysis.probe import CopyState, copy_states

    base = PROMPT.format(question=EX["question"])
    assert copy_states([EX]) == [CopyState(base + "25 - 10 = 15 beads.\n15", "mul")]
    three = {"question": "q", "solution": "7 + 2 = 9 cups.\n9 / 3 = 3 cups.\n3 - 1 = 2 cups.\n#### 2"}
    got = copy_states([three, EX])
    assert [(s.prompt[len(PROMPT.format(question="q")):], s.op) for s in got[:2]] == [
        ("7 + 2 = 9 cups.\n9", "div"), ("7 + 2 = 9 cups.\n9 / 3 = 3 cups.\n3", "sub")]
    assert len(got) == 3 and copy_states([{"question": "q", "solution": "#### 4"}]) == []


class LastToken(torch.nn.Module):
    """Logits at a position are a fixed row per input token: the distribution after a state is
    set by its last token, so reading a padded position instead shows."""

    def __init__(self, vocab: int, rows: dict[int, dict[int, float]]):
        super().__init__()
        table = torch.full((vocab, vocab), -1e4)
        table[:, 0] = 0.0  # every other token's next is token 0 (the pad): never a class here
        for tok_id, probs in rows.items():
            table[tok_id] = -1e4
            for j, p in probs.items():
                table[tok_id, j] = math.log(p)
        self.table = torch.nn.Parameter(table)

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.table[input_ids])


def test_next_token_mass_hand_worked(tiny_model_and_tokenizer):
    from vineppo.analysis.probe import NEXT, CopyState, next_token_mass, operation_tokens

    _, tok = tiny_model_and_tokenizer
    # A byte-level tokenizer has each symbol as a token of its own (with a leading space where merged)
    one = {t: tok(t, add_special_tokens=False)["input_ids"] for t in ("+", "-", "*", "/", "3", "0", "5", "7", "\n")}
    assert all(len(ids) == 1 for ids in one.values()), one
    i = {f" {t}" if t in "+-*/" else t: ids[0] for t, ids in one.items()}
    model_rows = {
        # after "...5" (a multiplication line): right *, flaw + (FLAW_OF mul), other ops - and /
        i["5"]: {i[" *"]: 0.5, i[" +"]: 0.2, i[" -"]: 0.05, i[" /"]: 0.05, i["0"]: 0.1, i["\n"]: 0.1},
        # after "...7" (an addition line): right +, flaw -, a digit is the most likely token
        i["7"]: {i[" +"]: 0.3, i[" -"]: 0.2, i["3"]: 0.4, i[" *"]: 0.1}}
    model = LastToken(len(tok), model_rows)
    states = [CopyState("Sam has 12 toys.\nAnswer:\n12 - 7 = 5 toys.\n5", "mul"), CopyState("Q\n7", "add")]
    got = next_token_mass(model, tok, states, batch_size=2)  # one right-padded batch of two lengths
    want = [{"right": 0.5, "flaw": 0.2, "other_op": 0.1, "digit": 0.1, "other": 0.1, "greedy": "right"},
            {"right": 0.3, "flaw": 0.2, "other_op": 0.1, "digit": 0.4, "other": 0.0, "greedy": "digit"}]
    for g, w in zip(got, want, strict=True):
        assert g["greedy"] == w["greedy"]
        assert {k: g[k] for k in NEXT} == pytest.approx({k: w[k] for k in NEXT}, abs=1e-5)
    assert next_token_mass(model, tok, states, batch_size=1) == got  # batching changes nothing
    padded = LastToken(len(tok) + 3, model_rows)  # a vocabulary padded past the tokenizer's
    for g, p in zip(got, next_token_mass(padded, tok, states), strict=True):
        assert p["greedy"] == g["greedy"] and {k: p[k] for k in NEXT} == pytest.approx({k: g[k] for k in NEXT})
    ops = operation_tokens(tok)
    assert bool(ops["add"][i[" +"]]) and not ops["add"][i[" -"]] and not ops["sub"][i["3"]]


def test_operation_tokens_need_one_token_per_symbol():
    from vineppo.analysis.probe import operation_tokens

    class Words:  # a vocabulary without a token for * or / (\\times spelt in two)
        vocab = ["<pad>", " +", " -", "\\", "times", "7"]

        def __len__(self):
            return len(self.vocab)

        def decode(self, ids):
            return "".join(self.vocab[i] for i in ids)

    with pytest.raises(ValueError, match="mul, div"):
        operation_tokens(Words())
    ops = operation_tokens(type("AllOps", (Words,), {"vocab": [*Words.vocab, "\\times", " /"]})())
    assert ops["mul"].tolist() == [False] * 6 + [True, False] and ops["div"].tolist() == [False] * 7 + [True]
