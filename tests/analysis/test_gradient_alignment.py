"""analysis/gradient_alignment.py: cosine by hand, the zero critic's advantages, the policy gradient's
invariants (whitening removes scale, a sign flip reverses it, equal advantages cancel), and a run
end to end on the smoke sweep's SFT model."""

import json

import pandas as pd
import pytest
import torch

from vineppo.rollout import Episode

from .test_value_quality_script import load_script

ga = load_script("gradient_alignment")


def test_cosine_by_hand():
    a = torch.tensor([3.0, 4.0])
    assert ga.cosine(a, a) == pytest.approx(1.0) and ga.cosine(a, -a) == pytest.approx(-1.0)
    assert ga.cosine(a, torch.tensor([4.0, -3.0])) == pytest.approx(0.0)
    assert ga.cosine(a, torch.zeros(2)) == 0.0


def episodes(tok, advantages: list[list[float]], rewards: list[float]) -> list[Episode]:
    prompt = "Question: Ava has 3 apples. She gets 4 more.\nAnswer:\n"
    p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    texts = ["3 + 4 = 7 apples.\n#### 7", "3 + 4 = 8 apples.\n#### 8"]
    out = []
    for t, adv, r in zip(texts, advantages, rewards, strict=True):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        out.append(Episode(0, {"answer": "7"}, prompt, p_ids, ids, t, "stop", r,
                           advantages=(adv * len(ids))[:len(ids)]))
    return out


def test_zero_critic_gives_every_token_the_return(tiny_model_and_tokenizer):
    _, tok = tiny_model_and_tokenizer
    eps = ga.with_advantages(episodes(tok, [[0.5], [-0.5]], [1.0, 0.0]), ga.zero_critic)
    assert [set(e.advantages) for e in eps] == [{1.0}, {0.0}]
    assert len(eps[0].advantages) == len(eps[0].response_ids)


def test_policy_gradient_invariants(tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    base = episodes(tok, [[1.0, 0.2], [-0.5, -1.5]], [1.0, 0.0])

    def scaled(c: float) -> list[Episode]:
        return [Episode(**{**e.__dict__, "advantages": [c * a for a in e.advantages]}) for e in base]

    constant = [Episode(**{**e.__dict__, "advantages": [0.5] * len(e.response_ids)}) for e in base]
    grads = ga.policy_gradients(model, tok, {"base": base, "x3": scaled(3.0), "neg": scaled(-1.0),
                                             "constant": constant}, temperature=0.6)
    assert grads["base"].norm() > 0
    # Whitening makes the direction independent of the advantages' scale; a sign flip reverses it.
    assert ga.cosine(grads["base"], grads["x3"]) == pytest.approx(1.0, abs=1e-5)
    assert ga.cosine(grads["base"], grads["neg"]) == pytest.approx(-1.0, abs=1e-5)
    # Every token with the same advantage (0.5: exact in floating point): whitened to 0, no update.
    assert grads["constant"].abs().max() == 0
    # The gradient is that of -mean(whiten(A) * log pi) over response tokens: checked against autograd
    # on a fresh forward pass.
    from vineppo.algorithms.advantages import masked_mean, whiten
    from vineppo.rollout import collate_episodes, token_logprobs

    batch = collate_episodes(base, tok.pad_token_id)
    model.zero_grad()
    (-masked_mean(whiten(batch["advantages"], batch["mask"]) * token_logprobs(model, batch, 0.6), batch["mask"])).backward()
    direct = torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad])
    model.zero_grad()
    assert torch.allclose(grads["base"], direct, atol=1e-6)


@pytest.mark.slow
def test_end_to_end_on_the_smoke_sft_model(smoke_runs, tmp_path):
    out = tmp_path / "ga"
    rc = ga.main([str(smoke_runs / "sft-arith" / "final"), "--task", "arith", "--batches", "2", "--ks", "2",
                  "--truth-k", "3", "--set", "rl.prompts_per_iter=3", "rl.samples_per_prompt=2",
                  "rl.max_new_tokens=60", "--out", str(out)])
    assert rc == 0
    df = pd.read_csv(out / "alignment.csv")
    assert sorted(df["estimator"].unique()) == sorted(["VinePPO, K=2", "GRPO", "RLOO", "PPO, value network at 0",
                                                       ga.REDRAW])
    assert (df.groupby("estimator").size() == 2).all() and (df["episodes"] == 6).all()
    assert df["cosine_with_reference"].between(-1 - 1e-6, 1 + 1e-6).all()
    summary = pd.read_csv(out / "summary.csv")
    assert (summary["batches"] == 2).all()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["commit"] and prov["rl"]["prompts_per_iter"] == "3"
    assert ga.main([str(tmp_path), "--out", str(out)]) == 2  # not a checkpoint: a clear failure
