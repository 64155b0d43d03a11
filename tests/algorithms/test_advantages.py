"""GAE, VinePPO step advantages and whitening against hand-worked cases and slow loops."""

import random

import pytest
import torch

from vineppo.algorithms.advantages import gae, vine_step_advantages, whiten


def slow_gae(rewards, values, length, gamma, lam):
    """Textbook GAE on one unpadded sequence, written as plainly as possible."""
    adv = [0.0] * length
    for t in range(length):
        total, coef = 0.0, 1.0
        for k in range(t, length):
            v_next = values[k + 1] if k + 1 < length else 0.0
            total += coef * (rewards[k] + gamma * v_next - values[k])
            coef *= gamma * lam
        adv[t] = total
    return adv


def test_gae_hand_worked():
    # Three tokens, reward 1 at the end, gamma = lam = 1: A_t = R - V_t.
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.5, 0.9]])
    adv, ret = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.8, 0.5, 0.1]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 1.0]]))
    # lam = 0: one-step TD errors.
    adv, _ = gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=0.0)
    assert torch.allclose(adv, torch.tensor([[0.3, 0.4, 0.1]]))
    # gamma = 0.5, lam = 0.5, hand-computed: d = [0.05, -0.05, 0.1]; A2 = .1, A1 = -.05+.025, A0 = .05+.25*(-.025)
    adv, _ = gae(rewards, values, torch.ones(1, 3), gamma=0.5, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[0.04375, -0.025, 0.1]]))


def test_gae_padding_is_ignored():
    rewards = torch.tensor([[0.0, 1.0, 5.0, 5.0]])
    values = torch.tensor([[0.4, 0.6, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.6, 0.4, 0.0, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[1.0, 1.0, 0.0, 0.0]]))


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (1.0, 0.96), (0.9, 0.5), (0.99, 0.0)])
def test_gae_matches_slow_loop(gamma, lam):
    rng = random.Random(0)
    batch, time = 5, 9
    lengths = [rng.randint(1, time) for _ in range(batch)]
    rewards = torch.tensor([[rng.uniform(-1, 1) for _ in range(time)] for _ in range(batch)])
    values = torch.tensor([[rng.uniform(-1, 1) for _ in range(time)] for _ in range(batch)])
    mask = torch.tensor([[1.0 if t < n else 0.0 for t in range(time)] for n in lengths])
    adv, ret = gae(rewards, values, mask, gamma, lam)
    for b, n in enumerate(lengths):
        expected = slow_gae(rewards[b].tolist(), values[b].tolist(), n, gamma, lam)
        assert torch.allclose(adv[b, :n], torch.tensor(expected), atol=1e-5)
        assert torch.all(adv[b, n:] == 0)
        assert torch.allclose(ret[b, :n], adv[b, :n] + values[b, :n])


def test_vine_step_advantages_hand_worked():
    # V(s0)=0.5, V(s1)=0.75, V(s2)=1.0, final reward 1: A = [0.25, 0.25, 0.0]
    assert vine_step_advantages([0.5, 0.75, 1.0], 1.0) == pytest.approx([0.25, 0.25, 0.0])
    # A wrong last step: V(s2)=1.0 but reward 0 -> A2 = -1.
    assert vine_step_advantages([0.5, 0.75, 1.0], 0.0) == pytest.approx([0.25, 0.25, -1.0])
    assert vine_step_advantages([0.3], 1.0) == pytest.approx([0.7])
    assert vine_step_advantages([], 1.0) == []


def test_vine_step_advantages_telescope():
    """With gamma = 1 the step advantages sum to R - V(s0), whatever the middle values."""
    rng = random.Random(1)
    for _ in range(100):
        values = [rng.random() for _ in range(rng.randint(1, 12))]
        reward = float(rng.random() < 0.5)
        assert sum(vine_step_advantages(values, reward)) == pytest.approx(reward - values[0])


def test_whiten():
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    w = whiten(x, mask)
    assert torch.allclose(w, torch.tensor([[-1.2247, 0.0, 1.2247, 0.0]]), atol=1e-4)
    # All-equal values: zeros, not NaN.
    w = whiten(torch.full((2, 3), 0.7), torch.ones(2, 3))
    assert torch.all(torch.isfinite(w)) and torch.allclose(w, torch.zeros(2, 3))


def test_a_constant_critic_cancels_in_whitened_advantages():
    """gamma = lambda = 1 (the paper's PPO): A_t = R - V(s_t), so a value network that has learned
    only a level c (V = c everywhere) gives, once whitened, exactly the whitened returns of a critic
    predicting 0; a state-dependent V does not (results/critic_lr_per_model/ leans on this)."""
    torch.manual_seed(0)
    rewards = torch.zeros(6, 5)
    lengths = [5, 3, 4, 2, 5, 1]
    mask = torch.zeros(6, 5)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1.0
        rewards[i, n - 1] = float(i % 2)  # 0/1 outcome at the last token
    zero, _ = gae(rewards, torch.zeros(6, 5) * mask, mask, 1.0, 1.0)
    level, _ = gae(rewards, torch.full((6, 5), 0.57) * mask, mask, 1.0, 1.0)
    varied, _ = gae(rewards, torch.rand(6, 5) * mask, mask, 1.0, 1.0)
    assert torch.allclose(whiten(level, mask), whiten(zero, mask), atol=1e-5)
    assert not torch.allclose(level, zero)  # before whitening the level does shift them
    assert (whiten(varied, mask) - whiten(zero, mask)).abs().max() > 0.1
