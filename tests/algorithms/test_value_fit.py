"""How well a value estimate fits the returns (PPO's critic, VinePPO's MC values): hand-worked cases."""

import math

import pytest
import torch

from vineppo.algorithms.advantages import value_fit

MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])  # 5 response tokens, one padding column
RETURNS = torch.tensor([[1.0, 1.0, 7.0], [0.0, 0.0, 0.0]])  # padding holds junk that must not count


def test_exact_critic_explains_everything_and_a_constant_nothing():
    assert value_fit(RETURNS.clone(), RETURNS, MASK)["value/explained_variance"] == pytest.approx(1.0)
    mean = torch.full_like(RETURNS, 0.4)  # R on the 5 tokens: 1, 1, 0, 0, 0 -> mean 0.4
    stats = value_fit(mean, RETURNS, MASK)
    assert stats["value/explained_variance"] == pytest.approx(0.0, abs=1e-12)
    assert stats["value/mean"] == pytest.approx(0.4) and stats["value/mean_return"] == pytest.approx(0.4)
    # An untrained critic (V = 0) also explains nothing: the variance of R - 0 is R's own.
    assert value_fit(torch.zeros_like(RETURNS), RETURNS, MASK)["value/explained_variance"] == pytest.approx(0.0)


def test_hand_worked_partial_critic():
    values = torch.tensor([[0.5, 1.0, -3.0], [0.5, 0.0, 0.0]])
    # R - V on the 5 tokens: 0.5, 0, -0.5, 0, 0 -> variance 0.1; Var(R) = 0.24 -> 1 - 0.1 / 0.24.
    stats = value_fit(values, RETURNS, MASK)
    assert stats["value/explained_variance"] == pytest.approx(1 - 0.1 / 0.24)
    assert stats["value/mean"] == pytest.approx(0.4)
    # Predicting the wrong way round is worse than a constant: below 0.
    assert value_fit(1 - RETURNS, RETURNS, MASK)["value/explained_variance"] < 0


def test_returns_without_variance_give_nan():
    assert math.isnan(value_fit(torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2))["value/explained_variance"])
