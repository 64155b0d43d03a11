"""DPO+ (SPEC.md): DPO on (correct, incorrect) response pairs of the same prompt, sampled from the
current policy, plus an NLL term on the correct response; iterated. The reference of each
iteration is the policy that sampled the pairs (iterated DPO)."""

from __future__ import annotations

import itertools
import random

import torch

from vineppo.algorithms.losses import dpo_loss
from vineppo.rollout import Episode


def pairs(episodes: list[Episode], max_pairs: int | None = None, seed: int = 0) -> list[tuple[int, ...]]:
    """Training units (chosen, rejected) within each prompt: its correct and incorrect responses
    paired off (each in one pair at most), or with `max_pairs` that many of all their combinations,
    drawn at random (all where fewer), as the authors' DPO+ episode generator draws them."""
    by: dict[int, tuple[list[int], list[int]]] = {}
    for i, e in enumerate(episodes):
        good, bad = by.setdefault(e.group, ([], []))
        (good if e.reward == 1.0 else bad).append(i)
    if max_pairs is None:
        return [pair for good, bad in by.values() for pair in zip(good, bad, strict=False)]
    rng, out = random.Random(seed), []
    for good, bad in by.values():
        combos = list(itertools.product(good, bad))
        out += combos if len(combos) <= max_pairs else sorted(rng.sample(combos, max_pairs))
    return out


def loss(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, beta: float,
         nll_coef: float, positive_lambda: float = 0.0) -> torch.Tensor:
    """Rows alternate chosen, rejected; sequence log-probs are sums over response tokens."""
    seq, ref_seq = (logp * mask).sum(-1), (ref_logp * mask).sum(-1)
    lengths = mask.sum(-1).clamp(min=1)
    return dpo_loss(seq[0::2], seq[1::2], ref_seq[0::2], ref_seq[1::2], beta, nll_coef, lengths[0::2],
                    positive_lambda)
