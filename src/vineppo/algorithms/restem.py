"""RestEM (Singh et al., 2023): iterated rejection-sampling fine-tuning. Sample from the current
policy, keep the correct responses (each distinct one once per prompt), and fine-tune the current
model on them with the ordinary next-token loss."""

from __future__ import annotations

import torch

from vineppo.algorithms.advantages import masked_mean
from vineppo.rollout import Episode


def select(episodes: list[Episode]) -> list[tuple[int, ...]]:
    """Training units: each distinct correct response of each prompt, once."""
    seen, units = set(), []
    for i, e in enumerate(episodes):
        key = (e.group, e.response)
        if e.reward == 1.0 and key not in seen:
            seen.add(key)
            units.append((i,))
    return units


def loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood per response token."""
    return masked_mean(-logp, mask)
