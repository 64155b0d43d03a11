"""Advantages: GAE for PPO's value network, Monte Carlo step advantages for VinePPO, whitening.

Tensors are `[batch, time]` over response tokens, right-padded; `mask` is 1 on valid tokens.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean 0, std 1 over the valid entries (SPEC.md); all-equal values give 0, not NaN."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016).

    `values[:, t]` = V(state before token t); the value after the last valid token is 0.
    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}.
    Returns (advantages, returns) with returns = advantages + values on valid positions, 0 elsewhere.
    """
    mask = mask.to(values.dtype)
    batch, time = rewards.shape
    advantages = torch.zeros_like(values)
    zeros = torch.zeros(batch, dtype=values.dtype, device=values.device)
    next_adv = zeros
    for t in reversed(range(time)):
        valid_next = mask[:, t + 1] if t + 1 < time else zeros
        next_value = values[:, t + 1] * valid_next if t + 1 < time else zeros
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv * valid_next) * mask[:, t]
        advantages[:, t] = next_adv
    returns = (advantages + values) * mask
    return advantages, returns


def vine_step_advantages(step_values: list[float], final_reward: float) -> list[float]:
    """A_t = r_t + V(s_{t+1}) - V(s_t) with gamma = 1 (SPEC.md).

    `step_values[i]` = V(state i) for i = 0..n-1 of an n-step response; the terminal state's value
    is 0 and the reward comes only at the last step.
    """
    n = len(step_values)
    advantages = []
    for t in range(n):
        reward = final_reward if t == n - 1 else 0.0
        next_value = step_values[t + 1] if t + 1 < n else 0.0
        advantages.append(reward + next_value - step_values[t])
    return advantages


def value_fit(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """How well a value estimate predicts the returns of the episodes it is used on (over response
    tokens): explained variance 1 - Var(R - V) / Var(R) (1: exact, 0: no better than a constant at
    the mean return, below 0: worse), and the mean V against the mean R. For PPO, the value network
    before the update; a critic that has not learned yet predicts its initial 0 and explains
    nothing, and its GAE advantages are then plain returns. For VinePPO, the MC values. With 0/1
    rewards even exact values explain only part of the variance: the outcome from a state is random."""
    m = mask.bool()
    v, r = values[m].double(), returns[m].double()
    var_r = r.var(unbiased=False)
    explained = 1.0 - (r - v).var(unbiased=False) / var_r if var_r > 0 else torch.tensor(float("nan"))
    return {"value/explained_variance": explained.item(), "value/mean": v.mean().item(),
            "value/mean_return": r.mean().item()}
