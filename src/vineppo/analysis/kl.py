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


def digit_tokens(tokenizer) -> torch.Tensor:
    """A bool per vocabulary id: does the token decode to digits only (spaces aside)? Numbers are
    where a reasoning policy's arithmetic lives; the rest is wording and operations."""
    flags = [tokenizer.decode([i]).strip().isdigit() for i in range(len(tokenizer))]
    return torch.tensor(flags, dtype=torch.bool)


@torch.no_grad()
def response_kl(policy, reference, batch: dict[str, torch.Tensor], temperature: float,
                top_p: float, digits: torch.Tensor | None = None) -> dict[str, float]:
    """Each of `TERMS` averaged over the response tokens of a collated batch (`rollout.collate_episodes`
    layout: `mask` marks the positions that predict a response token), as `train/kl_ref` averages.
    With `digits` (`digit_tokens`), also `kl_tempered_digits`: the part of `kl_tempered` at positions
    whose (sampled) token is a digit, over all response tokens, so it and the rest add up."""
    logits_p = policy(input_ids=batch["input_ids"]).logits[:, :-1]
    logits_r = reference(input_ids=batch["input_ids"]).logits[:, :-1]
    terms = kl_terms(logits_p, logits_r, batch["targets"], temperature, top_p)
    mask = batch["mask"].bool()
    if not mask.any():
        raise ValueError("no response tokens in the batch")
    out = {name: t[mask].mean().item() for name, t in terms.items()}
    if digits is not None:
        vocab = logits_p.shape[-1]  # a model's vocabulary can be padded past its tokenizer's
        flags = torch.nn.functional.pad(digits[:vocab], (0, max(vocab - len(digits), 0)))
        at_digit = flags.to(batch["targets"].device)[batch["targets"]] & mask
        out["kl_tempered_digits"] = (terms["kl_tempered"] * at_digit).sum().item() / mask.sum().item()
    return out


__all__ = ["TERMS", "digit_tokens", "kl_terms", "response_kl"]
