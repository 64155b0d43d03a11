"""PPO clip loss, value loss, k3 KL and DPO(+) against hand-worked numbers and slow loops."""

import math

import pytest
import torch

from vineppo.algorithms.losses import dpo_loss, k3_kl, ppo_policy_loss, value_loss


def test_k3_kl_hand_worked():
    logp = torch.tensor([math.log(0.5), math.log(0.2), math.log(0.3)])
    ref = torch.tensor([math.log(0.5), math.log(0.4), math.log(0.1)])
    # r = ref/p: 1 -> 0; 2 -> 2 - ln2 - 1; 1/3 -> 1/3 + ln3 - 1
    expected = torch.tensor([0.0, 1 - math.log(2), 1 / 3 + math.log(3) - 1])
    assert torch.allclose(k3_kl(logp, ref), expected, atol=1e-6)
    assert k3_kl(torch.tensor([-30.0]), torch.tensor([0.0])).item() == 10.0  # clipped at 10
    assert torch.all(k3_kl(torch.randn(100), torch.randn(100)) >= 0)


def test_k3_is_unbiased_kl_estimate():
    """E_{x~p}[k3] = KL(p || ref): check on a small discrete distribution, exactly."""
    p = torch.tensor([0.5, 0.3, 0.2])
    ref = torch.tensor([0.2, 0.5, 0.3])
    expected_k3 = (p * k3_kl(p.log(), ref.log())).sum()
    kl = (p * (p / ref).log()).sum()
    assert torch.allclose(expected_k3, kl, atol=1e-6)


def slow_ppo_loss(logp, old, adv, mask, clip):
    total, count = 0.0, 0
    for lp, o, a, m in zip(logp.flatten().tolist(), old.flatten().tolist(), adv.flatten().tolist(),
                           mask.flatten().tolist(), strict=True):
        if not m:
            continue
        r = math.exp(lp - o)
        total += max(-a * r, -a * min(max(r, 1 - clip), 1 + clip))
        count += 1
    return total / count


def test_ppo_clip_hand_worked():
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.1, 1.5]]))
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    mask = torch.ones(1, 4)
    # ratio 1.5, A>0: clipped to 1.2 -> -1.2; ratio .5, A<0: max(.5, .8) -> .8; 1.1 -> -1.1; 1.5, A<0 -> 1.5
    loss, stats = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 1.1 + 1.5) / 4)
    assert stats["clip_fraction"] == pytest.approx(0.5)


def test_ppo_clip_matches_slow_loop_and_gradient_sign():
    g = torch.Generator().manual_seed(0)
    logp = torch.randn(4, 7, generator=g) * 0.3
    old = torch.randn(4, 7, generator=g) * 0.3
    adv = torch.randn(4, 7, generator=g)
    mask = (torch.rand(4, 7, generator=g) > 0.3).float()
    loss, _ = ppo_policy_loss(logp, old, adv, mask, 0.2)
    assert loss.item() == pytest.approx(slow_ppo_loss(logp, old, adv, mask, 0.2), rel=1e-5)
    # Inside the trust region, descending the loss raises log-prob where A > 0.
    lp = old.clone().requires_grad_(True)
    ppo_policy_loss(lp, old, adv, mask, 0.2)[0].backward()
    assert torch.all((lp.grad * adv)[mask.bool()] <= 0)


def test_value_loss_clipping():
    old = torch.tensor([[0.5, 0.5]])
    values = torch.tensor([[1.0, 0.6]])
    returns = torch.tensor([[1.0, 1.0]])
    # token 0: unclipped 0, clipped V=0.7 -> 0.09 -> max 0.09; token 1: 0.16 both
    loss = value_loss(values, old, returns, torch.ones(1, 2), clip=0.2)
    assert loss.item() == pytest.approx(0.5 * (0.09 + 0.16) / 2)
    # No clip: token 0 costs nothing, token 1 0.16.
    assert value_loss(values, old, returns, torch.ones(1, 2), clip=None).item() == pytest.approx(0.5 * 0.16 / 2)
    # Clipped, a value that has moved past the clip toward the return gets no gradient; unclipped it does.
    v = torch.tensor([[0.8]], requires_grad=True)
    value_loss(v, torch.tensor([[0.5]]), torch.tensor([[1.0]]), torch.ones(1, 1), clip=0.2).backward()
    assert v.grad.item() == 0.0
    v.grad = None
    value_loss(v, torch.tensor([[0.5]]), torch.tensor([[1.0]]), torch.ones(1, 1), clip=None).backward()
    assert v.grad.item() == pytest.approx(0.8 - 1.0)


def test_dpo_loss_hand_worked():
    pc, pr = torch.tensor([-1.0]), torch.tensor([-3.0])
    rc, rr = torch.tensor([-2.0]), torch.tensor([-2.0])
    # logits = (−1+2) − (−3+2) = 2; loss = −log σ(0.1 * 2)
    expected = -math.log(1 / (1 + math.exp(-0.2)))
    assert dpo_loss(pc, pr, rc, rr, beta=0.1).item() == pytest.approx(expected)
    # Equal policy and reference: log 2.
    assert dpo_loss(rc, rr, rc, rr, beta=0.5).item() == pytest.approx(math.log(2))
    # DPO+: plus nll_coef * (−log π(chosen) / length).
    plus = dpo_loss(pc, pr, rc, rr, beta=0.1, nll_coef=0.5, chosen_lengths=torch.tensor([4.0]))
    assert plus.item() == pytest.approx(expected + 0.5 * 1.0 / 4)


def test_dpo_positive_hand_worked():
    """DPO-Positive (the authors' DPO+, lambda 50): the chosen response's log-likelihood fell 2
    below the reference's, so the logits (-2 + 1 = -1) lose 50 * 2; risen, nothing is taken off."""
    pc, pr, rc, rr = torch.tensor([-10.0]), torch.tensor([-12.0]), torch.tensor([-8.0]), torch.tensor([-11.0])
    loss = dpo_loss(pc, pr, rc, rr, beta=0.1, positive_lambda=50.0)
    assert loss.item() == pytest.approx(math.log1p(math.exp(0.1 * 101)), rel=1e-6)
    assert dpo_loss(pc, pr, rc, rr, beta=0.1).item() == pytest.approx(math.log1p(math.exp(0.1 * 1)), rel=1e-6)
    risen = torch.tensor([-7.0])  # above the reference: (1) - (-1) = 2, no penalty
    assert dpo_loss(risen, pr, rc, rr, beta=0.1, positive_lambda=50.0).item() == \
        pytest.approx(math.log1p(math.exp(-0.2)), rel=1e-6)
    # Its gradient raises the chosen response's likelihood 1 + lambda times as hard while below.
    a, b = torch.tensor([-10.0], requires_grad=True), torch.tensor([-10.0], requires_grad=True)
    dpo_loss(a, pr, rc, rr, beta=0.1, positive_lambda=50.0).backward()
    dpo_loss(b, pr, rc, rr, beta=0.1).backward()
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert a.grad.item() == pytest.approx(-0.1 * 51 * sig(0.1 * 101), rel=1e-5)
    assert b.grad.item() == pytest.approx(-0.1 * sig(0.1 * 1), rel=1e-5)


def test_dpo_pairs_zipped_or_drawn_from_all_combinations():
    """DPO+'s pairs: a prompt with correct responses 0, 2 and incorrect 1, 3, 4 (and one with
    only correct ones, which gives none): paired off, (0, 1) and (2, 3); with max_pairs, that many
    of its 6 combinations, distinct, drawn by the seed, all 6 where max_pairs >= 6."""
    from vineppo.algorithms.dpo_plus import pairs
    from vineppo.rollout import Episode

    def ep(group, reward):
        return Episode(group=group, example={}, prompt="", prompt_ids=[], response_ids=[], response="",
                       finish_reason="stop", reward=reward)

    episodes = [ep(0, 1.0), ep(0, 0.0), ep(0, 1.0), ep(0, 0.0), ep(0, 0.0), ep(1, 1.0), ep(1, 1.0)]
    assert pairs(episodes) == [(0, 1), (2, 3)]
    every = {(c, r) for c in (0, 2) for r in (1, 3, 4)}
    assert set(pairs(episodes, max_pairs=6)) == every and len(pairs(episodes, max_pairs=10)) == 6
    drawn = pairs(episodes, max_pairs=4, seed=3)
    assert len(set(drawn)) == 4 and set(drawn) <= every and drawn == pairs(episodes, max_pairs=4, seed=3)
    assert any(pairs(episodes, max_pairs=4, seed=s) != drawn for s in range(10))  # the seed draws


def test_dpo_gradient_prefers_chosen():
    pc = torch.tensor([-2.0], requires_grad=True)
    pr = torch.tensor([-2.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.1).backward()
    assert pc.grad.item() < 0 < pr.grad.item()
