"""DPO+ (SPEC.md): DPO on (correct, incorrect) response pairs of the same prompt, sampled from the
current policy, plus an NLL term on the correct response; iterated. The reference of each
iteration is the policy that sampled the pairs (iterated DPO)."""

from __future__ import annotations

import torch

from vineppo.algorithms.losses import dpo_loss
from vineppo.rollout import Episode


def pairs(episodes: list[Episode]) -> list[tuple[int, ...]]:
    """Training units (chosen, rejected): within each prompt, correct and incorrect responses zipped."""
    by: dict[int, tuple[list[int], list[int]]] = {}
    for i, e in enumerate(episodes):
        good, bad = by.setdefault(e.group, ([], []))
        (good if e.reward == 1.0 else bad).append(i)
    return [pair for good, bad in by.values() for pair in zip(good, bad, strict=False)]


def loss(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float,
         nll_coef: float) -> torch.Tensor:
    """Rows alternate chosen, rejected; sequence log-probs are sums over response tokens."""
    seq, ref_seq = (logp * mask).sum(-1), (ref_logp * mask).sum(-1)
    lengths = mask.sum(-1).clamp(min=1)
    return dpo_loss(seq[0::2], seq[1::2], ref_seq[0::2], ref_seq[1::2], beta, nll_coef, lengths[0::2])
