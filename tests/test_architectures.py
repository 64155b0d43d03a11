"""Your own model: the code paths that touch a model's internals (the hf engine's KV cache and
position ids, the shared-prefix forward, PPO's value network on `AutoModel`, loading by folder)
give the numbers a plain forward gives on other decoder families than the tiny Llama, built here
small and random: absolute positions (GPT-2, OPT), grouped-query attention and untied heads
(Qwen2, Phi-3, OLMo-2), parallel blocks (GPT-NeoX, Falcon), and Gemma-2, whose sliding window
sends the shared-prefix passes down the plain path."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from vineppo import shared_prefix
from vineppo.algorithms.ppo import ValueModel
from vineppo.inference import HFEngine, SamplingParams
from vineppo.models import load_model, load_tokenizer
from vineppo.rollout import Episode, collate_episodes, token_logprobs

from .conftest import EASY
from .test_inference import generate_greedy

LAYERS = dict(num_hidden_layers=2, num_attention_heads=4)
ARCHITECTURES = {
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_positions=256),
    "opt": dict(hidden_size=32, ffn_dim=64, word_embed_proj_dim=32, max_position_embeddings=256, **LAYERS),
    "qwen2": dict(hidden_size=32, intermediate_size=64, num_key_value_heads=2, max_position_embeddings=256,
                  tie_word_embeddings=False, **LAYERS),
    "phi3": dict(hidden_size=32, intermediate_size=64, num_key_value_heads=2, max_position_embeddings=256,
                 sliding_window=None, **LAYERS),
    "olmo2": dict(hidden_size=32, intermediate_size=64, max_position_embeddings=256, **LAYERS),
    "gpt_neox": dict(hidden_size=32, intermediate_size=64, max_position_embeddings=256, **LAYERS),
    "falcon": dict(hidden_size=32, new_decoder_architecture=False, **LAYERS),
    "gemma2": dict(hidden_size=32, intermediate_size=64, num_key_value_heads=2, head_dim=8,
                   max_position_embeddings=256, **LAYERS),
}
SHARES_PREFIX = {name: name != "gemma2" for name in ARCHITECTURES}
PROMPTS = ["Question: Ava has 3 apples.\nAnswer:\n", "Question: Ben has 12 coins. He finds 4 more.\nAnswer:\n"]


def build(name: str, tok, folder, **overrides) -> str:
    """A small random `name` model with the tiny tokenizer, saved as a user's checkpoint would be."""
    config = AutoConfig.for_model(name, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                  **{**ARCHITECTURES[name], **overrides})
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=list(ARCHITECTURES))
def checkpoint(request, tmp_path_factory, tiny_model_and_tokenizer):
    return request.param, build(request.param, tiny_model_and_tokenizer[1], tmp_path_factory.mktemp(request.param))


def fresh_logprobs(model, prompt_ids: list[int], response_ids: list[int], temperature: float) -> torch.Tensor:
    """log pi(response token | prefix) from one plain forward of one unpadded sequence, no cache."""
    ids = torch.tensor([prompt_ids + response_ids])
    logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float() / temperature, -1)
    return logp.gather(-1, ids[0, 1:, None]).squeeze(-1)[len(prompt_ids) - 1:]


def test_engine_logprobs_and_value_network(checkpoint):
    name, folder = checkpoint
    model, tok = load_model(folder), load_tokenizer(folder)
    assert model.config.model_type == name
    assert shared_prefix.supports(model) == SHARES_PREFIX[name]
    engine = HFEngine(model, tok, batch_size=2)

    # Greedy decoding through the engine's KV cache and left padding = transformers' generate.
    greedy = engine.generate(PROMPTS, SamplingParams(temperature=0.0, max_new_tokens=12))
    assert [c[0].token_ids for c in greedy] == generate_greedy(model, tok, PROMPTS, 12)

    # Sampled responses (n=3 from one cached prompt) carry the log-probs of a fresh forward.
    sampled = engine.generate(PROMPTS, SamplingParams(n=3, temperature=0.8, max_new_tokens=10, seed=1))
    episodes = []
    with torch.no_grad():
        for prompt, comps in zip(PROMPTS, sampled, strict=True):
            prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
            for c in comps:
                assert torch.allclose(torch.tensor(c.logprobs), fresh_logprobs(model, prompt_ids, c.token_ids, 0.8),
                                      atol=1e-4)
                episodes.append(Episode(group=0, example={}, prompt=prompt, prompt_ids=prompt_ids,
                                        response_ids=c.token_ids, response="", finish_reason=c.finish_reason,
                                        reward=1.0, logprobs=list(c.logprobs)))
    batch = collate_episodes(episodes, tok.pad_token_id)
    mask = batch["mask"].bool()

    # The trainer's log-probs (right-padded batch, prompt shared or not) = the sampler's, and their
    # gradients agree between the two paths.
    grads = []
    for shared in (True, False):
        model.zero_grad()
        logp = token_logprobs(model, batch, 0.8, shared_prefix=shared)
        assert torch.allclose(logp[mask], batch["sampler_logp"][mask], atol=1e-4)
        (logp * batch["mask"]).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-4, rtol=1e-3)

    # PPO's value network on this backbone: the same values with the prompt shared or not.
    value = ValueModel(folder)
    torch.nn.init.normal_(value.head.weight)
    with torch.no_grad():
        shared_values = value(batch)
        value.shared_prefix = False
        plain_values = value(batch)
    assert torch.allclose(shared_values[mask], plain_values[mask], atol=1e-4)
    assert shared_values[mask].std() > 0


# The size of EASY's Llama (hidden 64), no dropout: learns EASY's problems in a few hundred steps.
LEARNS = {"gpt2": dict(n_embd=64, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0),
          "qwen2": dict(hidden_size=64, intermediate_size=256)}


@pytest.mark.slow
@pytest.mark.parametrize("name,algo", [("gpt2", "ppo"), ("qwen2", "vineppo")])
def test_sft_then_rl_on_another_architecture(tmp_path, tiny_model_and_tokenizer, name, algo):
    """A user's model of another family, SFT then two iterations of RL: the SFT model learns (its
    greedy accuracy beats the random start's 0), RL trains it further (nonzero gradients, other
    weights), and the RL run's final/ is a model of the same family that loads."""
    from vineppo.config import make_config
    from vineppo.loop import train_rl
    from vineppo.runio import read_jsonl
    from vineppo.sft import train_sft

    from .test_loop import RL

    start = build(name, tiny_model_and_tokenizer[1], tmp_path / "init", **LEARNS[name])
    sft = train_sft(make_config(EASY + [f"model.name_or_path={start}", f"output_dir={tmp_path}", "run_name=sft",
                                        "sft.max_steps=300", "eval.num_samples=0", "task.num_test=50"]))
    assert sft["test_greedy_accuracy"] > 0.1
    cfg = make_config(EASY + RL + [f"rl.init={sft['final_model']}", f"rl.algo={algo}", f"output_dir={tmp_path}"])
    summary = train_rl(cfg)
    run = tmp_path / f"{algo}-arith-s0"
    records = read_jsonl(run / "metrics.jsonl")
    assert [r["iteration"] for r in records] == [1, 2] and summary["grad_steps"] == 8
    assert all(r["train/grad_norm"] > 0 for r in records)
    before, after = load_model(sft["final_model"]), load_model(summary["final_model"])
    assert type(after) is type(before) and after.config.model_type == name
    ids = torch.tensor([tiny_model_and_tokenizer[1](PROMPTS[0], add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert not torch.allclose(after(input_ids=ids).logits, before(input_ids=ids).logits)
