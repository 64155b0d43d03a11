"""The hf engine: greedy equals model.generate; seeded sampling; stop strings and finish reasons."""

import torch

from vineppo.inference import HFEngine, SamplingParams
from vineppo.inference.hf import top_p_filter

PROMPTS = ["Question: Ava has 3 apples.\nAnswer:\n", "Question: Ben has 12 coins. He finds 4 more.\nAnswer:\n"]


def test_greedy_matches_model_generate(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    engine = HFEngine(model, tok, batch_size=2)
    out = engine.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=12))
    enc = tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, do_sample=False, max_new_tokens=12, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    for i, comp in enumerate(out):
        expected = ref[i, enc["input_ids"].shape[1]:].tolist()
        if tok.eos_token_id in expected:
            expected = expected[:expected.index(tok.eos_token_id) + 1]
        assert comp[0].token_ids == expected


def test_batch_does_not_change_greedy(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    params = SamplingParams(temperature=0.0, max_new_tokens=10)
    together = HFEngine(model, tok, batch_size=2).generate(PROMPTS, params)
    alone = [HFEngine(model, tok, batch_size=1).generate([p], params)[0] for p in PROMPTS]
    assert [c[0].token_ids for c in together] == [c[0].token_ids for c in alone]


def test_seeded_sampling_repeats(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    engine = HFEngine(model, tok)
    p = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=5)
    a, b = engine.generate(PROMPTS, p), engine.generate(PROMPTS, p)
    assert [[c.token_ids for c in x] for x in a] == [[c.token_ids for c in x] for x in b]
    assert all(len(x) == 3 for x in a)
    assert all(c.finish_reason in ("stop", "length") for x in a for c in x)
    assert all(len(c.logprobs) == len(c.token_ids) and all(lp <= 0 for lp in c.logprobs) for x in a for c in x)


def test_top_p_keeps_smallest_nucleus():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.allclose(top_p_filter(probs, 0.7), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    assert torch.allclose(top_p_filter(probs, 0.5), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(top_p_filter(probs, 1.0), probs)
