"""GRPO pieces: group-normalised advantages, the clipped policy objective, the KL penalty.

Shapes: a rollout batch holds B activations x G samples, flattened to N = B*G rows in group-major
order (rows g*G .. g*G+G-1 belong to activation g). Token tensors are [N, T] with a mask.
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """(r - group mean) / (group std + eps), per group of `group_size` consecutive rows.
    A group whose samples all score the same carries no signal: its advantages are 0."""
    r = rewards.float().view(-1, group_size)
    mean = r.mean(1, keepdim=True)
    std = r.std(1, unbiased=False, keepdim=True)
    return ((r - mean) / (std + eps)).view(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp_min(1)


def clipped_policy_loss(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO-style clipped surrogate, token level, averaged over valid tokens.
    Returns (loss to minimise, fraction of tokens whose ratio was clipped)."""
    ratio = torch.exp(logp - logp_old)
    adv = advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv
    loss = -masked_mean(torch.minimum(unclipped, clipped), mask)
    clip_frac = masked_mean(((ratio - 1).abs() > clip_eps).float(), mask)
    return loss, clip_frac.detach()


def kl_penalty(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token KL(policy || reference) with the non-negative k3 estimator
    exp(ref - pol) - (ref - pol) - 1, averaged over valid tokens; exactly 0 when equal."""
    d = logp_ref - logp
    return masked_mean(torch.exp(d) - d - 1, mask)
