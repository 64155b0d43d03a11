"""The learner under `rl.autocast`: bf16 forward passes close to fp32's, fp32 results and weights,
the same numbers from the loop's no-grad pass as from the update's forward (so PPO's ratio starts
at 1), and 'auto' following the hardware."""

import copy

import pytest
import torch

from vineppo.config import ConfigError
from vineppo.learner import Learner, autocast, resolve_autocast, use_eager_attention
from vineppo.rollout import Episode, chunked, collate_episodes, token_logprobs

CPU = torch.device("cpu")


def batch_of(tok, texts):
    prompt = "Q: how many?\nAnswer:\n"
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    eps = [Episode(0, {}, prompt, ids, tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id], t,
                   "stop", 0.0) for t in texts]
    return collate_episodes(eps, tok.pad_token_id)


TEXTS = ["1 + 2 = 3.\n#### 3", "4 + 5 = 9 apples and more words here.\n#### 9", "#### 1", "7 - 2 = 5.\n#### 5",
         "She has 3 and gets 4 more, 3 + 4 = 7.\n#### 7"]


def test_resolve_autocast(monkeypatch):
    assert resolve_autocast(None, CPU) is None
    assert resolve_autocast("bfloat16", CPU) == "bfloat16"
    with pytest.raises(ConfigError, match="rl.autocast: 'fp8'"):
        resolve_autocast("fp8", CPU)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert resolve_autocast("auto", CPU) is None  # emulated bf16 would be slower than fp32
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert resolve_autocast("auto", CPU) == "bfloat16"


def test_bf16_forward_is_close_to_fp32_and_trains_fp32_weights(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    policy = copy.deepcopy(model).train()
    batch = batch_of(tok, TEXTS)
    mask = batch["mask"].bool()
    with torch.no_grad():
        fp32, _ = Learner(policy, None)(batch, 0.7)
    use_eager_attention(policy)
    learner = Learner(policy, None, "bfloat16")
    bf16, _ = learner(batch, 0.7)
    assert bf16.dtype == torch.float32
    diff = (bf16 - fp32)[mask].abs()
    # bf16 keeps 8 bits of mantissa: close to fp32, but not equal (the autocast is really on).
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.02
    (-(bf16 * batch["mask"]).sum()).backward()
    assert all(p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
               for p in policy.parameters() if p.requires_grad)


def test_no_grad_pass_under_autocast_equals_the_updates_forward(tiny_model_and_tokenizer):
    """The loop's old log-probs (length-sorted chunks, no grad, under the same autocast) equal the
    update's forward on a mini-batch to within fp32 rounding, so the first ratio is 1; the fp32
    pass (the sampler's numerics) is measurably off, which is why the loop recomputes."""
    model, tok = tiny_model_and_tokenizer
    policy = copy.deepcopy(model).train()
    use_eager_attention(policy)
    batch = batch_of(tok, TEXTS)
    mask = batch["mask"].bool()
    with autocast(CPU, "bfloat16"):
        old = chunked(lambda b: token_logprobs(policy, b, 0.7), batch, chunk=2)
    fp32 = chunked(lambda b: token_logprobs(policy, b, 0.7), batch, chunk=2)
    rows = torch.tensor([1, 3, 4])
    mb = {k: v[rows] for k, v in batch.items()}
    new, _ = Learner(policy, None, "bfloat16")(mb, 0.7)
    assert (new - old[rows])[mask[rows]].abs().max() < 1e-4
    assert (fp32 - old)[mask].abs().max() > 1e-3
