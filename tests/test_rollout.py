"""Collating episodes and trimming a mini-batch's padding: same log-probs and loss on the cut batch."""

import copy

import torch

from vineppo.algorithms.advantages import masked_mean
from vineppo.algorithms.losses import ppo_policy_loss
from vineppo.rollout import Episode, collate_episodes, token_logprobs, trim_padding


def test_trim_padding_keeps_every_value(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    lengths = [(5, 3), (7, 12), (4, 30)]  # (prompt, response) tokens; the third sets the batch width
    eps = [Episode(i, {}, "", list(range(10, 10 + p)), list(range(40, 40 + r)), "", "stop", 1.0,
                   [0.5 - 0.1 * j for j in range(r)]) for i, (p, r) in enumerate(lengths)]
    batch = collate_episodes(eps, tok.pad_token_id)
    assert batch["input_ids"].shape == (3, 34) and batch["mask"].shape == (3, 33)
    idx = torch.tensor([0, 1])  # a mini-batch without the long episode: 19 tokens wide
    with torch.no_grad():
        full_logp = token_logprobs(model, batch, 0.7)
        old = full_logp - 0.05
        mb, mb_old = trim_padding({k: v[idx] for k, v in batch.items()}, old[idx])
        assert mb["input_ids"].shape == (2, 19) and mb["mask"].shape == (2, 18) and mb_old.shape == (2, 18)
        assert mb["mask"].sum() == batch["mask"][idx].sum() == 3 + 12  # no response token lost
        cut_logp = token_logprobs(model, mb, 0.7)
        m = mb["mask"].bool()
        assert torch.allclose(cut_logp[m], full_logp[idx][:, :18][m], atol=1e-5)
        loss_cut, _ = ppo_policy_loss(cut_logp, mb_old, mb["advantages"], mb["mask"], 0.2)
        loss_full, _ = ppo_policy_loss(full_logp[idx], old[idx], batch["advantages"][idx], batch["mask"][idx], 0.2)
        assert torch.allclose(loss_cut, loss_full, atol=1e-6)
        assert torch.allclose(masked_mean(mb["advantages"], mb["mask"]),
                              masked_mean(batch["advantages"][idx], batch["mask"][idx]))
    # The full batch is already as narrow as its longest episode: nothing to cut.
    same, = trim_padding(batch)[:1]
    assert same["input_ids"].shape == batch["input_ids"].shape


def test_token_logprobs_scores_only_the_response_and_matches_full_logits(tiny_model_and_tokenizer):
    """Logits start at the batch's first response column (logits_to_keep), yet every response
    token's log-prob and its gradient equal those from the model's full logits, computed here by hand."""
    model, tok = tiny_model_and_tokenizer
    model = copy.deepcopy(model).train()
    lengths = [(9, 4), (6, 11), (12, 7)]  # the second prompt is shortest: response columns start at 5
    eps = [Episode(i, {}, "", list(range(10, 10 + p)), list(range(40 + i, 40 + i + r)), "", "stop", 1.0)
           for i, (p, r) in enumerate(lengths)]
    batch = collate_episodes(eps, tok.pad_token_id)
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    logp = token_logprobs(model, batch, 0.7, shared_prefix=False)
    hook.remove()
    assert seen == [batch["input_ids"].shape[1] - 5]  # positions 5 .. end: the prompt columns before 5 skipped
    assert (logp[:, :5] == 0).all()
    full = torch.log_softmax(model(input_ids=batch["input_ids"]).logits[:, :-1] / 0.7, dim=-1)
    ref = full.gather(-1, batch["targets"].unsqueeze(-1)).squeeze(-1)
    m = batch["mask"].bool()
    assert torch.allclose(logp[m], ref[m], atol=1e-5)
    g_cut = torch.autograd.grad(logp[m].sum(), model.get_input_embeddings().weight)[0]
    g_ref = torch.autograd.grad(ref[m].sum(), model.get_input_embeddings().weight)[0]
    assert torch.allclose(g_cut, g_ref, atol=1e-5) and g_ref.abs().sum() > 0


def test_response_tokens_text_rule_trains_on_the_text_and_eos(tiny_model_and_tokenizer):
    """rl.response_tokens: 'sampled' keeps the engine's ids and log-probs; 'text' trains on the
    text as SFT encodes a target (stop string gone, EOS after a stop, none after 'length')."""
    from vineppo.inference import Completion
    from vineppo.rollout import response_tokens

    _, tok = tiny_model_and_tokenizer
    eos, text = tok.eos_token_id, "4 + 5 = 9 rocks.\n#### 9"
    # Sampled one character at a time, then the stop string: not how the tokenizer encodes it.
    sampled = [i for ch in text + "\n\n\nProblem:" for i in tok(ch, add_special_tokens=False)["input_ids"]]
    c = Completion(text=text, token_ids=sampled, logprobs=[-0.5] * len(sampled), finish_reason="stop")
    assert response_tokens(c, tok, "sampled") == (sampled, [-0.5] * len(sampled))
    ids, logprobs = response_tokens(c, tok, "text")
    assert logprobs == [] and ids[-1] == eos and eos not in ids[:-1]
    assert tok.decode(ids[:-1]) == text and len(ids) - 1 < len(text)  # the text's own (merged) tokens
    target = tok("\n" + text, add_special_tokens=False)["input_ids"]  # how SFT encoded such a target
    assert target[-len(ids) + 1:] == ids[:-1]
    cut = Completion(text="4 + 5 = ", token_ids=sampled[:8], logprobs=[-0.5] * 8, finish_reason="length")
    ids, _ = response_tokens(cut, tok, "text")
    assert eos not in ids and tok.decode(ids) == "4 + 5 = "


def test_text_response_tokens_in_an_iteration(easy_sft_checkpoint):
    """generate_shard with rl.response_tokens=text: every episode's ids decode to its text (cut
    before the stop string, EOS after it), VinePPO gives each token an advantage, and the collated
    batch has no sampler log-probs, so the loop recomputes pi_old."""
    from tests.conftest import EASY
    from vineppo.config import make_config
    from vineppo.inference import HFEngine
    from vineppo.loop import generate_shard
    from vineppo.models import load_model, load_tokenizer
    from vineppo.tasks import PromptFormat, load_task

    model, tok = load_model(easy_sft_checkpoint).eval(), load_tokenizer(easy_sft_checkpoint)
    cfg = make_config(EASY + ["rl.algo=vineppo", "rl.samples_per_prompt=4", "rl.max_new_tokens=40", "rl.vine_k=2",
                              "rl.response_tokens=text"])
    fmt = PromptFormat(stop=("\n####",))  # the SFT model writes its answer line after every solution
    eps, _, _ = generate_shard(HFEngine(model, tok), tok, load_task(cfg.task).train[:3], 0, cfg.rl, "arith", 3,
                               lambda items: [0.0] * len(items), fmt)
    assert sum(e.finish_reason == "stop" for e in eps) >= len(eps) - 1
    for e in eps:
        ended = e.finish_reason == "stop"
        assert (e.response_ids[-1] == tok.eos_token_id) == ended and "####" not in e.response
        assert tok.decode(e.response_ids, skip_special_tokens=True) == e.response
        assert e.logprobs == [] and len(e.advantages) == len(e.values) == len(e.response_ids)
    assert "sampler_logp" not in collate_episodes(eps, tok.pad_token_id)
