"""The hf engine: greedy equals model.generate; seeded sampling; stop strings and finish reasons."""

import os

import torch

from vineppo.inference import HFEngine, SamplingParams
from vineppo.inference.hf import top_p_filter

PROMPTS = ["Question: Ava has 3 apples.\nAnswer:\n", "Question: Ben has 12 coins. He finds 4 more.\nAnswer:\n"]


def generate_greedy(model, tok, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    """transformers' own greedy `generate` on the left-padded prompts, each cut after its EOS."""
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                         eos_token_id=tok.eos_token_id)
    out = []
    for row in ref[:, enc["input_ids"].shape[1]:].tolist():
        out.append(row[:row.index(tok.eos_token_id) + 1] if tok.eos_token_id in row else row)
    return out


def test_greedy_matches_model_generate(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    engine = HFEngine(model, tok, batch_size=2)
    out = engine.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=12))
    assert [c[0].token_ids for c in out] == generate_greedy(model, tok, PROMPTS, 12)


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


def fresh_logprobs(model, tok, prompt: str, completion_ids: list[int], temperature: float) -> list[float]:
    """log pi(token | prefix) of a completion from one plain forward pass, no cache."""
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float() / temperature, -1)
    targets = ids[0, 1:]
    return logp.gather(-1, targets[:, None]).squeeze(-1)[len(prompt_ids) - 1:].tolist()


def test_logprobs_equal_fresh_forward_with_and_without_prefix_sharing(tiny_model_and_tokenizer):
    """Shared (n=4 from one cached prefix) and unshared (4 copies of the prompt) samples both carry
    the log-probs a fresh forward pass gives: the repeated cache is the prefix's true state."""
    model, tok = tiny_model_and_tokenizer
    engine = HFEngine(model, tok, batch_size=8)
    params = SamplingParams(n=4, temperature=0.8, max_new_tokens=12, seed=3)
    shared = engine.generate(PROMPTS, params)
    unshared = engine.generate([p for p in PROMPTS for _ in range(4)],
                               SamplingParams(n=1, temperature=0.8, max_new_tokens=12, seed=3))
    checked = 0
    for prompt, comps in zip(PROMPTS, shared, strict=True):
        for c in comps:
            assert max(abs(a - b) for a, b in zip(c.logprobs, fresh_logprobs(model, tok, prompt, c.token_ids, 0.8), strict=True)) < 1e-4
            checked += 1
    for i, comps in enumerate(unshared):
        c = comps[0]
        assert max(abs(a - b) for a, b in zip(c.logprobs, fresh_logprobs(model, tok, PROMPTS[i // 4], c.token_ids, 0.8), strict=True)) < 1e-4
    assert checked == 8


def test_compaction_does_not_change_greedy(easy_sft_checkpoint):
    """Rows of different lengths finish at different times; dropping them from the cache mid-way
    must leave every other row's output unchanged."""
    from vineppo.models import load_model, load_tokenizer
    from vineppo.tasks import PROMPT

    model, tok = load_model(easy_sft_checkpoint).eval(), load_tokenizer(easy_sft_checkpoint)
    questions = ["Ava has 3 apples. She buys 2 more. How many apples does Ava have?",
                 "Ben has 5 coins. He finds 4 more. Then he finds 1 more. How many coins does Ben have?",
                 "Cal has 7 pens.", "Dee has 2 cups. She gets 3 more. How many cups does Dee have?"] * 3
    prompts = [PROMPT.format(question=q) for q in questions]
    params = SamplingParams(temperature=0.0, max_new_tokens=60)
    compacted = HFEngine(model, tok, batch_size=12, compact_fraction=0.1).generate(prompts, params)
    plain = HFEngine(model, tok, batch_size=12, compact_fraction=2.0).generate(prompts, params)
    assert [c[0].token_ids for c in compacted] == [c[0].token_ids for c in plain]
    assert len({len(c[0].token_ids) for c in plain}) > 1  # the case is real: lengths differ


def test_token_id_prompts_equal_text_prompts(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    engine = HFEngine(model, tok)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=1)
    ids = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    assert [[c.token_ids for c in x] for x in engine.generate(ids, params)] == \
        [[c.token_ids for c in x] for x in engine.generate(PROMPTS, params)]


def test_bos_engine_reads_text_prompts_after_the_bos_token(tiny_model_and_tokenizer):
    """With `bos` (task.prompt_bos) a text prompt is read as [BOS] + its tokens: the same samples as
    those ids given directly, and other samples than the text without BOS (the check can fail)."""
    model, tok = tiny_model_and_tokenizer
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=8, seed=1)
    ids = [[tok.bos_token_id, *tok(p, add_special_tokens=False)["input_ids"]] for p in PROMPTS]
    with_bos = HFEngine(model, tok, bos=True).generate(PROMPTS, params)
    assert [[c.token_ids for c in x] for x in with_bos] == \
        [[c.token_ids for c in x] for x in HFEngine(model, tok).generate(ids, params)]
    assert [[c.logprobs for c in x] for x in with_bos] != \
        [[c.logprobs for c in x] for x in HFEngine(model, tok).generate(PROMPTS, params)]


def test_sampling_matches_softmax(tiny_model_and_tokenizer):
    """100,000 one-token samples from a fixed prefix: their frequencies match softmax(logits / T)
    after the top-p cut within sampling noise, and differ from the untempered or uncut softmax."""
    import copy

    model, tok = tiny_model_and_tokenizer
    sharp = copy.deepcopy(model)
    with torch.no_grad():
        sharp.model.norm.weight.mul_(4.0)  # a peaked but wide next-token distribution
    temperature, top_p, n = 0.7, 0.9, 100_000
    out = HFEngine(sharp, tok, batch_size=n).generate(
        [PROMPTS[0]], SamplingParams(n=n, temperature=temperature, top_p=top_p, max_new_tokens=1, seed=0))[0]
    counts = torch.bincount(torch.tensor([c.token_ids[0] for c in out]), minlength=len(tok)).float()
    empirical = counts / n
    ids = torch.tensor([tok(PROMPTS[0], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = sharp(input_ids=ids).logits[0, -1].float()

    def tv(p: torch.Tensor) -> float:
        return 0.5 * (empirical[:p.numel()] - p).abs().sum().item()

    expected = top_p_filter(torch.softmax(logits / temperature, -1), top_p)
    assert tv(expected) < 0.03
    assert counts[len(expected):].sum() == 0 and counts[:len(expected)][expected == 0].sum() == 0
    assert tv(top_p_filter(torch.softmax(logits, -1), top_p)) > 0.08  # temperature matters here
    assert tv(torch.softmax(logits / temperature, -1)) > 0.08  # and so does the top-p cut


def gqa_model(tok):
    """A random Llama with grouped-query attention (4 query heads share 2 key/value heads), as
    RhoMath-1.1B and DeepSeekMath-7B have (32 / 4 and 32 / 32)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    return LlamaForCausalLM(cfg).eval()


def test_shared_prefix_decoding_equals_the_plain_path(tiny_model_and_tokenizer):
    """The cascade decoder (one prompt cache per prompt) against the plain one (the cache copied
    to each of the n rows): the same tokens and log-probs within 1e-5, for prompts of different
    lengths (left padding), rows finishing at different steps (compaction) and grouped-query
    attention; and its log-probs are a fresh forward pass's."""
    from vineppo.inference import cascade

    model, tok = tiny_model_and_tokenizer
    prompts = PROMPTS + ["Question: Cy has 2.\nAnswer:\n"]
    for m in (model, gqa_model(tok)):
        assert cascade.supports(m)
        params = SamplingParams(n=3, temperature=0.9, top_p=0.95, max_new_tokens=20, seed=4)
        fast = HFEngine(m, tok, batch_size=9, compact_fraction=0.1).generate(prompts, params)
        slow = HFEngine(m, tok, batch_size=9, compact_fraction=0.1, shared_prefix=False).generate(prompts, params)
        assert [[c.token_ids for c in x] for x in fast] == [[c.token_ids for c in x] for x in slow]
        assert max(abs(a - b) for x, y in zip(fast, slow, strict=True) for c, d in zip(x, y, strict=True)
                   for a, b in zip(c.logprobs, d.logprobs, strict=True)) < 1e-5
        lengths = {len(c.token_ids) for x in fast for c in x}
        for prompt, comps in zip(prompts, fast, strict=True):
            for c in comps:
                ref = fresh_logprobs(m, tok, prompt, c.token_ids, 0.9)
                assert max(abs(a - b) for a, b in zip(c.logprobs, ref, strict=True)) < 1e-4
    assert len(lengths) > 1  # rows did finish at different steps


def test_vllm_engine_missing_is_a_config_error(tiny_model_and_tokenizer, monkeypatch):
    """Where vllm is not installed, engine=vllm ends in one ConfigError that says how to get it
    (not an ImportError from inside the engine)."""
    import importlib.util

    import pytest

    from vineppo.config import ConfigError
    from vineppo.inference import make_engine

    model, tok = tiny_model_and_tokenizer
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else find_spec(name, *a))
    with pytest.raises(ConfigError, match="engine=vllm: vLLM is not installed here; .*ensure_vllm_env.sh"):
        make_engine("vllm", model, tok, batch_size=4)
    with pytest.raises(ConfigError, match="engine: unknown engine 'vlm'; available: hf, vllm"):
        make_engine("vlm", model, tok, batch_size=4)


class _Started(Exception):
    """Raised by the stand-in vllm.LLM below once it has seen how it was started."""


def test_vllm_engine_under_a_launcher_takes_this_process_gpu(tiny_model_and_tokenizer, monkeypatch):
    """Under a launcher each process's vLLM joins its process group ('external_launcher') and takes
    the GPU that LOCAL_RANK names while it starts. A Slurm task of launch.py sees only its own GPU
    (cuda:0) with LOCAL_RANK=3: vLLM must be told 0, as the training forward uses, and LOCAL_RANK
    is 3 again afterwards. One process starts vLLM as before. (vllm is stood in for here: no GPU.)"""
    import sys
    import types

    import pytest

    from vineppo.inference.vllm import VLLMEngine

    _, tok = tiny_model_and_tokenizer
    seen = []

    def llm(**kwargs):
        seen.append((kwargs.get("distributed_executor_backend"), os.environ.get("LOCAL_RANK")))
        raise _Started

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=llm))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(_Started):
        VLLMEngine("unused", tok)
    assert seen == [("external_launcher", "0")] and os.environ["LOCAL_RANK"] == "3"
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(_Started):
        VLLMEngine("unused", tok)
    assert seen[1] == (None, "0")
