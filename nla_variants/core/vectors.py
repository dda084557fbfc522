"""Normalisation, normalised MSE and FVE.

Both prediction and target are L2-normalised to the same `scale` before the squared error, so at
unit scale the MSE is 2(1 - cos): direction only. FVE = 1 - MSE / MSE_baseline, where the baseline
predicts the mean of the (normalised) training vectors for every example.
"""

from __future__ import annotations

import torch

ORTHOGONAL_MSE = 2.0  # normalised MSE of orthogonal unit vectors: the failed-extraction score


def normalize(x: torch.Tensor, scale: float = 1.0, eps: float = 1e-8) -> torch.Tensor:
    """Rows of `x` rescaled to L2 norm `scale` (computed in fp32 for bf16 inputs)."""
    x32 = x.float()
    return (x32 * (scale / x32.norm(dim=-1, keepdim=True).clamp_min(eps))).to(x.dtype)


def normalized_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example squared error of unit-normalised vectors: [B], in [0, 4], = 2(1 - cos)."""
    return (normalize(pred.float()) - normalize(target.float())).pow(2).sum(-1)


def mean_direction(train_vectors: torch.Tensor) -> torch.Tensor:
    """The predict-the-mean baseline: mean of the normalised training vectors, [d]."""
    return normalize(train_vectors.float()).mean(0)


def baseline_mse(target: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Per-example normalised MSE of predicting `mean` for every target: [B]."""
    return normalized_mse(mean.expand_as(target), target)


def centered_cosine(pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Per-example cosine of unit prediction and unit target after subtracting `mean` (the mean
    of the unit training vectors) from both: [B], in [-1, 1]. Predicting the mean direction scores
    ~0, so unlike the normalised MSE it does not pay for hedging towards what every row shares."""
    m = mean.float().to(pred.device)
    a, b = normalize(pred.float()) - m, normalize(target.float()) - m
    return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8)


def raw_baseline_mse(target: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """The classical baseline: squared distance of each unit target to the raw (not
    re-normalised) mean of the unit training vectors, [B]. Smaller than `baseline_mse` (the AR
    can only output unit directions, the raw mean is shorter), so `fve` against it is lower:
    the figure other NLA work compares against."""
    return (normalize(target.float()) - mean.float()).pow(2).sum(-1)


def fve(pred_mse: torch.Tensor, base_mse: torch.Tensor) -> float:
    """Fraction of variance explained from per-example MSEs (the mean over the set of each)."""
    return float(1.0 - pred_mse.float().mean() / base_mse.float().mean().clamp_min(1e-12))


def fve_of(pred: torch.Tensor, target: torch.Tensor, mean: torch.Tensor) -> float:
    """FVE of predictions against targets, with the training mean as the baseline."""
    return fve(normalized_mse(pred, target), baseline_mse(target, mean))


def derangement(n: int, seed: int) -> torch.Tensor:
    """A seeded permutation with no fixed point (so no row is scored against itself)."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    return torch.roll(perm, 1)[torch.argsort(perm)] if n > 1 else perm
