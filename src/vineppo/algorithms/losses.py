"""Losses shared by the methods: PPO's clipped surrogate and value loss, the k3 KL penalty, DPO(+).

Token tensors are `[batch, time]` with a 0/1 `mask`; every mean is over valid tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vineppo.algorithms.advantages import masked_mean


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL(pi || pi_ref) estimate "k3": exp(ref - logp) - (ref - logp) - 1, clipped to [0, 10]."""
    log_ratio = ref_logp - logp
    return (log_ratio.exp() - log_ratio - 1).clamp(0.0, 10.0)


def ppo_policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, clip: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate: mean of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))."""
    ratio = (logp - old_logp).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {"clip_fraction": masked_mean((clipped > unclipped).float(), mask).item(),
                 "approx_kl_old": masked_mean(0.5 * (logp - old_logp) ** 2, mask).item()}
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float | None) -> torch.Tensor:
    """Clipped value loss: 0.5 * mean of max((V - R)^2, (clip(V, V_old +- eps) - R)^2); with `clip`
    None the plain 0.5 * mean (V - R)^2."""
    if clip is None:
        return 0.5 * masked_mean((values - returns) ** 2, mask)
    clipped = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float,
             nll_coef: float = 0.0, chosen_lengths: torch.Tensor | None = None,
             positive_lambda: float = 0.0) -> torch.Tensor:
    """DPO (Rafailov et al., 2023), mean over the batch; with `nll_coef` > 0 it is DPO+ (SPEC.md):
    plus nll_coef * the chosen response's negative log-likelihood per token. `positive_lambda` > 0
    is DPO-Positive (Pal et al., 2024; the authors' DPO+): the logits lose lambda times how far the
    chosen response's log-likelihood has fallen below the reference's."""
    logits = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    if positive_lambda:
        logits = logits - positive_lambda * (ref_chosen_logps - policy_chosen_logps).clamp(min=0)
    loss = -F.logsigmoid(beta * logits).mean()
    if nll_coef:
        lengths = chosen_lengths if chosen_lengths is not None else torch.ones_like(policy_chosen_logps)
        loss = loss + nll_coef * (-policy_chosen_logps / lengths).mean()
    return loss
