"""GRPO and RLOO advantages against hand-worked groups."""

import pytest

from vineppo.algorithms import grpo, rloo
from vineppo.rollout import Episode


def test_grpo_standardises_within_group():
    assert grpo.group_advantages([1.0, 0.0, 0.0, 1.0]) == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-3)
    assert grpo.group_advantages([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]  # all equal: no signal, no NaN


def test_rloo_leave_one_out():
    # r = [1, 0, 0, 1]: baseline for r0 is (0+0+1)/3
    assert rloo.leave_one_out_advantages([1.0, 0.0, 0.0, 1.0]) == pytest.approx([2 / 3, -2 / 3, -2 / 3, 2 / 3])
    assert rloo.leave_one_out_advantages([1.0]) == [0.0]


def test_groups_are_kept_apart_and_tokens_share_advantage():
    eps = [Episode(g, {}, "", [1], [5] * (2 + i), "", "stop", r)
           for i, (g, r) in enumerate([(0, 1.0), (0, 0.0), (1, 1.0), (1, 1.0)])]
    rloo.assign_advantages(eps)
    assert [e.advantages for e in eps] == [[1.0] * 2, [-1.0] * 3, [0.0] * 4, [0.0] * 5]
    grpo.assign_advantages(eps)
    assert eps[0].advantages[0] > 0 > eps[1].advantages[0] and eps[2].advantages == [0.0] * 4
