"""Shared-prefix log-probs: each distinct prompt encoded once, the same values and gradients as the
plain forward over prompt + response."""

import copy

import pytest
import torch

from vineppo import shared_prefix
from vineppo.learner import autocast, use_eager_attention
from vineppo.rollout import Episode, collate_episodes, token_logprobs


def grouped_batch(tok, shuffle: bool = True):
    """3 prompts (7, 4 and 10 tokens) x 3 samples with responses of 2 to 14 tokens, rows shuffled."""
    prompts = [[11, 12, 13, 14, 15, 16, 17], [21, 22, 23, 24], [31, 32, 33, 34, 35, 36, 37, 38, 39, 40]]
    eps = []
    for g, p in enumerate(prompts):
        for s, r in enumerate([2 + 5 * g, 14 - 3 * g, 6]):
            eps.append(Episode(g, {}, "", p, [50 + (7 * g + 3 * s + j) % 40 for j in range(r)], "", "stop", 1.0))
    if shuffle:
        order = torch.randperm(len(eps), generator=torch.Generator().manual_seed(0)).tolist()
        eps = [eps[i] for i in order]
    return collate_episodes(eps, tok.pad_token_id), prompts


def test_prompt_groups_by_hand():
    ids = torch.tensor([[5, 6, 7, 1], [5, 6, 9, 9], [5, 6, 7, 2], [5, 6, 0, 0]])
    prompts, group = shared_prefix.prompt_groups(ids, [3, 3, 3, 2])
    assert prompts == [(5, 6, 7), (5, 6, 9), (5, 6)]  # (5, 6) is a prompt of its own, not a prefix match
    assert group == [0, 1, 0, 2]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_same_logprobs_and_gradients_as_the_plain_forward(tiny_model_and_tokenizer, attention):
    model, tok = tiny_model_and_tokenizer
    model = copy.deepcopy(model).train()
    model.set_attn_implementation(attention)
    batch, prompts = grouped_batch(tok)
    m = batch["mask"].bool()
    tokens = []
    hook = model.get_input_embeddings().register_forward_hook(lambda mod, i, o: tokens.append(i[0].numel()))
    shared = shared_prefix.logprobs(model, batch, 0.7)
    hook.remove()
    assert shared is not None
    # One pass over the 3 prompts (padded to 10) and one over the 9 responses (padded to 14).
    assert tokens == [3 * 10, 9 * 14]
    assert (shared[~m] == 0).all()
    plain = token_logprobs(model, batch, 0.7, shared_prefix=False)
    assert torch.allclose(shared[m], plain[m], atol=1e-5)
    assert torch.allclose(token_logprobs(model, batch, 0.7), shared)  # the default takes the shared path
    weights = [p for p in model.parameters() if p.requires_grad]
    g_shared = torch.autograd.grad((shared * batch["mask"]).sum(), weights)
    g_plain = torch.autograd.grad((plain * batch["mask"]).sum(), weights)
    for a, b in zip(g_shared, g_plain, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert sum(g.abs().sum() for g in g_plain) > 0


def test_close_to_fp32_under_bf16_autocast(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    model = copy.deepcopy(model)
    use_eager_attention(model)
    batch, _ = grouped_batch(tok)
    m = batch["mask"].bool()
    with torch.no_grad():
        plain32 = token_logprobs(model, batch, 0.7, shared_prefix=False)
        with autocast(torch.device("cpu"), "bfloat16"):
            shared16 = token_logprobs(model, batch, 0.7)
            plain16 = token_logprobs(model, batch, 0.7, shared_prefix=False)
    assert (shared16 - plain32)[m].abs().max() < 0.1  # bf16 rounding, the plain path's order of error
    assert (plain16 - plain32)[m].abs().max() < 0.1


def test_plain_path_where_sharing_saves_nothing(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    eps = [Episode(i, {}, "", [11 + i, 12, 13], [40, 41 + i], "", "stop", 1.0) for i in range(4)]  # distinct prompts
    batch = collate_episodes(eps, tok.pad_token_id)
    assert shared_prefix.logprobs(model, batch, 1.0) is None
    batch, _ = grouped_batch(tok)
    batch["mask"][0] = 0  # a row without a response token
    assert shared_prefix.logprobs(model, batch, 1.0) is None


def test_value_network_same_values_and_gradients(tiny_model_and_tokenizer, tmp_path):
    """PPO's value network on the shared path: V of every response state and the value loss's
    gradients equal the plain pass's."""
    from vineppo.algorithms.ppo import ValueModel

    model, tok = tiny_model_and_tokenizer
    model.save_pretrained(tmp_path / "m")
    shared, plain = ValueModel(str(tmp_path / "m")), ValueModel(str(tmp_path / "m"), shared_prefix=False)
    with torch.no_grad():  # the zero-initialised head would make every V 0
        shared.head.weight.copy_(torch.randn(shared.head.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.5)
    plain.load_state_dict(shared.state_dict())
    batch, _ = grouped_batch(tok)
    m = batch["mask"].bool()
    tokens = []
    hook = shared.backbone.get_input_embeddings().register_forward_hook(lambda mod, i, o: tokens.append(i[0].numel()))
    v_shared = shared(batch)
    hook.remove()
    assert tokens == [3 * 10, 9 * 14]  # the shared path was taken
    v_plain = plain(batch)
    assert torch.allclose(v_shared[m], v_plain[m], atol=1e-5) and v_plain[m].std() > 0.01
    assert (v_shared[~m] == 0).all()
    g_shared = torch.autograd.grad((v_shared * batch["mask"]).pow(2).sum(), list(shared.parameters()))
    g_plain = torch.autograd.grad((v_plain * batch["mask"]).pow(2).sum(), list(plain.parameters()))
    for a, b in zip(g_shared, g_plain, strict=True):  # fp32 rounding, relative to each gradient's scale
        assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-8


def test_gradient_checkpointing_takes_the_plain_path_with_the_same_gradients(tiny_model_and_tokenizer, tmp_path):
    """model.gradient_checkpointing: a checkpointed layer drops the cache in a training forward
    (transformers; older versions without gradients too), so the policy's and the value network's
    forwards in training mode take the plain path, with the plain path's log-probs, values and
    gradients; in eval mode (the loop's no-grad passes) they share."""
    from vineppo.algorithms.ppo import ValueModel
    from vineppo.models import enable_gradient_checkpointing

    model, tok = tiny_model_and_tokenizer
    plain = copy.deepcopy(model).train()
    ckpt = copy.deepcopy(model).train()
    enable_gradient_checkpointing(ckpt)
    batch, _ = grouped_batch(tok)
    m = batch["mask"].bool()
    tokens = []
    hook = ckpt.get_input_embeddings().register_forward_hook(lambda mod, i, o: tokens.append(i[0].numel()))
    lp_ckpt = token_logprobs(ckpt, batch, 0.7)  # shared_prefix requested, as the Learner asks
    assert tokens == [9 * 22]  # one plain pass over the 9 rows (padded to 22), not the shared two
    with torch.no_grad():
        tokens.clear()
        assert torch.allclose(token_logprobs(ckpt.eval(), batch, 0.7)[m], lp_ckpt[m], atol=1e-5)
        assert tokens == [3 * 10, 9 * 14]  # eval mode: the shared path
        ckpt.train()
    hook.remove()
    lp_plain = token_logprobs(plain, batch, 0.7, shared_prefix=False)
    assert torch.allclose(lp_ckpt[m], lp_plain[m], atol=1e-6)
    weights = [[p for p in net.parameters() if p.requires_grad] for net in (ckpt, plain)]
    g_ckpt = torch.autograd.grad((lp_ckpt * batch["mask"]).sum(), weights[0])
    g_plain = torch.autograd.grad((lp_plain * batch["mask"]).sum(), weights[1])
    for a, b in zip(g_ckpt, g_plain, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    assert sum(g.abs().sum() for g in g_plain) > 0

    model.save_pretrained(tmp_path / "m")
    v_ckpt, v_plain = ValueModel(str(tmp_path / "m"), head_init="normal"), ValueModel(
        str(tmp_path / "m"), shared_prefix=False, head_init="normal")
    enable_gradient_checkpointing(v_ckpt.backbone)
    a, b = v_ckpt.train()(batch), v_plain.train()(batch)
    assert torch.allclose(a[m], b[m], atol=1e-6) and b[m].std() > 0.01
    g_a = torch.autograd.grad((a * batch["mask"]).pow(2).sum(), list(v_ckpt.parameters()))
    g_b = torch.autograd.grad((b * batch["mask"]).pow(2).sum(), list(v_plain.parameters()))
    for x, y in zip(g_a, g_b, strict=True):
        assert (x - y).abs().max() <= 1e-5 * y.abs().max() + 1e-8
