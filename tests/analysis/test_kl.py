"""vineppo.analysis.kl: the logged KL term, its mean under the sampler, and the exact KLs."""

import math

import pytest
import torch

from vineppo.analysis.kl import kl_terms, response_kl
from vineppo.inference.hf import sample_next

P, R = [0.7, 0.2, 0.1], [0.5, 0.3, 0.2]


def logits(probs):
    return torch.tensor(probs).log()[None]


def test_hand_worked_three_tokens():
    t = kl_terms(logits(P), logits(R), torch.tensor([2]), temperature=1.0, top_p=0.8)
    # top-p 0.8 keeps 0.7 and 0.2 (0.7 alone falls short): q = (7/9, 2/9, 0)
    assert t["expected"].item() == pytest.approx(7 / 9 * math.log(0.7 / 0.5) + 2 / 9 * math.log(0.2 / 0.3), abs=1e-6)
    kl = sum(p * math.log(p / r) for p, r in zip(P, R, strict=True))
    assert t["kl_tempered"].item() == pytest.approx(kl, abs=1e-6)
    assert t["kl"].item() == pytest.approx(kl, abs=1e-6)
    assert t["sampled"].item() == pytest.approx(math.log(0.1 / 0.2), abs=1e-6)
    assert t["entropy"].item() == pytest.approx(-sum(p * math.log(p) for p in P), abs=1e-6)


def test_temperature_sharpens_both_distributions():
    t = kl_terms(logits(P), logits(R), torch.tensor([0]), temperature=0.5, top_p=1.0)
    pt = [p * p / sum(x * x for x in P) for p in P]  # p^(1/T) renormalised, T = 0.5
    rt = [r * r / sum(x * x for x in R) for r in R]
    kl_t = sum(p * math.log(p / r) for p, r in zip(pt, rt, strict=True))
    assert t["kl_tempered"].item() == pytest.approx(kl_t, abs=1e-6)
    assert t["expected"].item() == pytest.approx(kl_t, abs=1e-6)  # no cut: the sampler is pi_T
    assert t["kl"].item() == pytest.approx(sum(p * math.log(p / r) for p, r in zip(P, R, strict=True)), abs=1e-6)
    assert t["sampled"].item() == pytest.approx(math.log(pt[0] / rt[0]), abs=1e-6)


def test_identical_models_give_zero_and_zero_mass_tokens_add_nothing():
    p = logits([0.6, 0.4, 0.0])  # -inf logit: a token neither model can emit
    t = kl_terms(p, p.clone(), torch.tensor([1]), temperature=0.6, top_p=0.9)
    for name in ("sampled", "expected", "kl_tempered", "kl"):
        assert t[name].item() == pytest.approx(0.0, abs=1e-7), name
    assert all(torch.isfinite(v).all() for v in t.values())


def test_sampled_term_averages_to_expected_under_the_real_sampler():
    """The sampler training uses (top-p, temperature): the k1 term's mean over its draws is `expected`,
    which differs from the exact KL(pi_T || ref_T) by more than the Monte Carlo error."""
    torch.manual_seed(0)
    pol, ref = torch.randn(1, 12) * 2, torch.randn(1, 12) * 2
    n, temp, top_p = 200_000, 0.6, 0.9
    tok, _ = sample_next(pol.expand(n, -1), temp, top_p, torch.Generator().manual_seed(1))
    t = kl_terms(pol.expand(n, -1), ref.expand(n, -1), tok, temp, top_p)
    se = t["sampled"].std().item() / math.sqrt(n)
    assert t["sampled"].mean().item() == pytest.approx(t["expected"][0].item(), abs=4 * se)
    assert abs(t["expected"][0].item() - t["kl_tempered"][0].item()) > 10 * se


class Toy(torch.nn.Module):
    """A 'model' whose next-token logits depend only on the current token."""

    def __init__(self, table):
        super().__init__()
        self.table = table

    def forward(self, input_ids):
        return type("Out", (), {"logits": self.table[input_ids]})()


def test_response_kl_averages_over_response_tokens_only():
    torch.manual_seed(0)
    pol, ref = Toy(torch.randn(5, 5)), Toy(torch.randn(5, 5))
    ids = torch.tensor([[1, 2, 3, 4], [2, 3, 0, 0]])
    mask = torch.tensor([[0.0, 1, 1], [1, 0, 0]])  # predicting ids 3, 4 in row 0; id 3 in row 1
    batch = {"input_ids": ids, "targets": ids[:, 1:], "mask": mask}
    got = response_kl(pol, ref, batch, 1.0, 1.0)
    lp, lr = pol.table.log_softmax(-1), ref.table.log_softmax(-1)
    exact = [(lp[s].exp() * (lp[s] - lr[s])).sum().item() for s in (2, 3, 2)]  # states 2, 3 (row 0), 2 (row 1)
    assert got["kl"] == pytest.approx(sum(exact) / 3, abs=1e-6)
    sampled = [(lp[2, 3] - lr[2, 3]).item(), (lp[3, 4] - lr[3, 4]).item(), (lp[2, 3] - lr[2, 3]).item()]
    assert got["sampled"] == pytest.approx(sum(sampled) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="no response tokens"):
        response_kl(pol, ref, {**batch, "mask": torch.zeros_like(mask)}, 1.0, 1.0)


def test_digit_part_adds_up_and_pads_past_the_tokenizer():
    torch.manual_seed(0)
    pol, ref = Toy(torch.randn(5, 5)), Toy(torch.randn(5, 5))
    ids = torch.tensor([[1, 2, 3, 4], [2, 4, 0, 0]])
    batch = {"input_ids": ids, "targets": ids[:, 1:], "mask": torch.tensor([[0.0, 1, 1], [1, 0, 0]])}
    digits = torch.tensor([False, False, False, True])  # id 3 is a digit; id 4 is past the tokenizer
    got = response_kl(pol, ref, batch, 1.0, 1.0, digits)
    lp, lr = pol.table.log_softmax(-1), ref.table.log_softmax(-1)
    kl = [(lp[s].exp() * (lp[s] - lr[s])).sum().item() for s in range(5)]
    # targets 3 (from state 2) and 4 (from 3) in row 0, 4 (from 2) in row 1: only the first is a digit
    assert got["kl_tempered_digits"] == pytest.approx(kl[2] / 3, abs=1e-6)
    assert got["kl_tempered"] == pytest.approx((kl[2] + kl[3] + kl[2]) / 3, abs=1e-6)


def test_digit_tokens_of_a_built_tokenizer(tiny_model_and_tokenizer):
    from vineppo.analysis.kl import digit_tokens

    _, tok = tiny_model_and_tokenizer
    flags = digit_tokens(tok)
    assert len(flags) == len(tok)
    for text, want in (("7", True), ("+", False), ("=", False)):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and bool(flags[ids[0]]) is want, text
    assert not flags[tok.pad_token_id] and not flags[tok.eos_token_id]
