"""How sure a difference between two readings of the same rows is.

Two readings scored on the same rows (the round trip and the text-only prompt, say) are paired:
each row's difficulty is shared, so the difference varies far less than either reading does. A
bootstrap that resamples whole rows, keeping each row's pair together, gives the interval the
difference really has at this n.
"""

from __future__ import annotations

import torch

BOOTSTRAP_SEED = 0  # one fixed resampling: the same rows give the same interval
BOOTSTRAP_SAMPLES = 2000


def paired_fve_difference(
    mse_a: torch.Tensor,
    mse_b: torch.Tensor,
    base_mse: torch.Tensor,
    *,
    level: float = 0.95,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """FVE(a) - FVE(b) on the same rows, with its percentile bootstrap interval over rows:
    (difference, low, high). Per row: `mse_a`, `mse_b` (each reading's normalised MSE) and
    `base_mse` (the predict-the-mean baseline's), all [n]. The difference is
    (sum mse_b - sum mse_a) / sum base; each resample draws n rows with replacement, so
    numerator and denominator move together as they do in the FVE itself."""
    if not mse_a.shape == mse_b.shape == base_mse.shape or mse_a.dim() != 1:
        raise ValueError("paired_fve_difference needs three [n] tensors over the same rows")
    n = len(mse_a)
    if n == 0:
        raise ValueError("paired_fve_difference needs at least one row")
    a, b, base = (t.double().cpu() for t in (mse_a, mse_b, base_mse))
    point = float((b.sum() - a.sum()) / base.sum().clamp_min(1e-12))
    if n < 2:
        return point, float("nan"), float("nan")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (samples, n), generator=g)
    diffs = (b[idx].sum(1) - a[idx].sum(1)) / base[idx].sum(1).clamp_min(1e-12)
    tail = (1.0 - level) / 2
    lo, hi = torch.quantile(diffs, torch.tensor([tail, 1.0 - tail], dtype=diffs.dtype)).tolist()
    return point, lo, hi
