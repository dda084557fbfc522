"""GRPO math on hand-computed groups."""

from __future__ import annotations

import math

import pytest
import torch

from nla_variants.core.grpo import clipped_policy_loss, group_advantages, kl_penalty


def test_advantages_are_normalised_within_each_group():
    rewards = torch.tensor([1.0, 3.0, -2.0, -2.0, 0.0, 4.0])
    adv = group_advantages(rewards, group_size=2)
    torch.testing.assert_close(
        adv, torch.tensor([-1.0, 1.0, 0.0, 0.0, -1.0, 1.0]), atol=1e-5, rtol=0
    )
    adv3 = group_advantages(torch.tensor([0.0, 1.0, 2.0]), group_size=3)
    std = math.sqrt(2 / 3)
    torch.testing.assert_close(adv3, torch.tensor([-1 / std, 0.0, 1 / std]), atol=1e-5, rtol=0)


def test_clipping_limits_the_ratio_in_the_advantage_direction():
    mask = torch.ones(1, 1)
    old = torch.zeros(1, 1)
    up = torch.log(torch.tensor([[1.5]]))  # ratio 1.5
    loss, frac = clipped_policy_loss(up, old, torch.tensor([1.0]), mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-1.2) and frac.item() == 1.0  # gain capped at 1.2
    loss, _ = clipped_policy_loss(up, old, torch.tensor([-1.0]), mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(1.5)  # a penalty is never clipped away
    inside = torch.log(torch.tensor([[1.1]]))
    loss, frac = clipped_policy_loss(inside, old, torch.tensor([2.0]), mask, clip_eps=0.2)
    assert loss.item() == pytest.approx(-2.2) and frac.item() == 0.0


def test_policy_gradient_pushes_up_positive_advantage_tokens():
    logp = torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    loss, _ = clipped_policy_loss(logp, logp.detach(), torch.tensor([1.0, -1.0]), mask)
    loss.backward()
    assert bool((logp.grad[0, :2] < 0).all()) and bool((logp.grad[1] > 0).all())
    assert logp.grad[0, 2] == 0  # padding gets no gradient


def test_kl_is_zero_when_policy_equals_reference_and_positive_otherwise():
    logp = torch.log_softmax(torch.randn(4, 7), -1)
    mask = torch.ones(4, 7)
    assert kl_penalty(logp, logp, mask).item() == 0.0
    assert kl_penalty(logp, logp + 0.3, mask).item() > 0
    assert kl_penalty(logp, logp - 0.3, mask).item() > 0
