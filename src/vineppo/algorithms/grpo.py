"""GRPO (Shao et al., 2024): a response's advantage is its reward standardised within its group
(the samples of the same prompt); every token of the response gets it. No value network."""

from __future__ import annotations

import statistics

from vineppo.rollout import Episode


def group_advantages(rewards: list[float], eps: float = 1e-4) -> list[float]:
    mean = statistics.fmean(rewards)
    std = statistics.pstdev(rewards) if len(rewards) > 1 else 0.0
    return [(r - mean) / (std + eps) for r in rewards]


def assign_advantages(episodes: list[Episode]) -> None:
    for group in _groups(episodes):
        for e, a in zip(group, group_advantages([e.reward for e in group]), strict=True):
            e.advantages = [a] * len(e.response_ids)


def _groups(episodes: list[Episode]) -> list[list[Episode]]:
    by: dict[int, list[Episode]] = {}
    for e in episodes:
        by.setdefault(e.group, []).append(e)
    return list(by.values())
