"""What the logged KL to the reference measures, and what the exact KL is, token by token.

Training logs `train/kl_ref`: the mean over sampled response tokens of log pi_T(y) - log ref_T(y),
both at the sampling temperature T, the tokens drawn from the top-p cut of pi_T. That is a one-sample
(k1) estimate, and its expectation is not KL(pi_T || ref_T): the tokens come from the cut sampler q,
not from pi_T. Here each position gets the sampled term, its exact expectation under q, the exact
KL of the tempered distributions, the exact KL at temperature 1, and pi_T's entropy, so a curve of
the logged number can be told apart into sampling noise, the sampler's bias, and the policy's drift.
"""

from __future__ import annotations

import torch

from vineppo.inference.hf import top_p_filter

TERMS = ("sampled", "expected", "kl_tempered", "kl", "entropy")


def kl_terms(policy_logits: torch.Tensor, ref_logits: torch.Tensor, targets: torch.Tensor,
             temperature: float, top_p: float) -> dict[str, torch.Tensor]:
    """Per position (`[..., V]` logits, `[...]` targets), in nats:

    sampled      log pi_T(y) - log ref_T(y) for the target y (what `train/kl_ref` averages)
    expected     sum_v q(v) (log pi_T(v) - log ref_T(v)), q = top-p cut of pi_T: the sampled term's mean
    kl_tempered  KL(pi_T || ref_T) = sum_v pi_T(v) (log pi_T(v) - log ref_T(v))
    kl           KL(pi || ref) at temperature 1
    entropy      H(pi_T)
    """
    logp_t = torch.log_softmax(policy_logits.float() / temperature, -1)
    logr_t = torch.log_softmax(ref_logits.float() / temperature, -1)
    p_t = logp_t.exp()
    ratio_t = logp_t - logr_t
    q = top_p_filter(p_t, top_p)
    logp = torch.log_softmax(policy_logits.float(), -1)
    p = logp.exp()
    logr = torch.log_softmax(ref_logits.float(), -1)
    # 0 * (-inf) terms: a token pi gives no mass adds nothing, whatever ref gives it.
    return {
        "sampled": ratio_t.gather(-1, targets.unsqueeze(-1)).squeeze(-1),
        "expected": torch.where(q > 0, q * ratio_t, 0.0).sum(-1),
        "kl_tempered": torch.where(p_t > 0, p_t * ratio_t, 0.0).sum(-1),
        "kl": torch.where(p > 0, p * (logp - logr), 0.0).sum(-1),
        "entropy": -torch.where(p_t > 0, p_t * logp_t, 0.0).sum(-1),
    }


@torch.no_grad()
def response_kl(policy, reference, batch: dict[str, torch.Tensor], temperature: float,
                top_p: float) -> dict[str, float]:
    """Each of `TERMS` averaged over the response tokens of a collated batch (`rollout.collate_episodes`
    layout: `mask` marks the positions that predict a response token), as `train/kl_ref` averages."""
    logits_p = policy(input_ids=batch["input_ids"]).logits[:, :-1]
    logits_r = reference(input_ids=batch["input_ids"]).logits[:, :-1]
    terms = kl_terms(logits_p, logits_r, batch["targets"], temperature, top_p)
    mask = batch["mask"].bool()
    if not mask.any():
        raise ValueError("no response tokens in the batch")
    return {name: t[mask].mean().item() for name, t in terms.items()}


__all__ = ["TERMS", "kl_terms", "response_kl"]
