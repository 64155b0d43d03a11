"""RLOO (Ahmadian et al., 2024): REINFORCE with a leave-one-out baseline, the mean reward of the
other samples of the same prompt; every token of the response gets the advantage."""

from __future__ import annotations

from vineppo.algorithms.grpo import _groups
from vineppo.rollout import Episode


def leave_one_out_advantages(rewards: list[float]) -> list[float]:
    k = len(rewards)
    if k < 2:
        return [0.0] * k
    total = sum(rewards)
    return [r - (total - r) / (k - 1) for r in rewards]


def assign_advantages(episodes: list[Episode]) -> None:
    for group in _groups(episodes):
        for e, a in zip(group, leave_one_out_advantages([e.reward for e in group]), strict=True):
            e.advantages = [a] * len(e.response_ids)
