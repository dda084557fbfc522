"""Ridge regression on fixed features, solved in closed form (float64).

Why one place: the AR's closed-form readout (`training/readout.py`) and the faithfulness probes
(`faithfulness.py`) both fit a linear map from features to targets; the Gram matrix is the
costly part, so it is computed once and solved for any targets and penalties.
"""

from __future__ import annotations

import torch


class Ridge:
    """argmin |X W + b - Y|^2 + lam |W|^2 for features X [n, d]; `penalty` is lam relative to
    the mean feature variance (lam = penalty x trace(Xc^T Xc) / d, Xc the centred features), so
    one value suits any feature scale. The bias is unpenalised (the features are centred).

    `intercept=False` fits b = 0: argmin |X W - Y|^2 + lam |W|^2 on the raw features, for a
    head that has no bias (the public release's value head), with lam scaled as above."""

    def __init__(self, features: torch.Tensor, intercept: bool = True) -> None:
        x = features.double()
        self.intercept = intercept
        mean = x.mean(0)
        self.mean = mean if intercept else torch.zeros_like(mean)
        self.centred = x - self.mean  # the raw features when there is no intercept
        self.gram = self.centred.T @ self.centred
        # the feature variance, whether or not the fit centres: one penalty means one strength
        self.variance = self.gram.trace() if intercept else (x - mean).pow(2).sum()

    def solve(self, targets: torch.Tensor, penalty: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [d, k], bias [k]) in float64 for targets [n, k]; the bias is zero when the
        fit has no intercept."""
        y = targets.double()
        y_mean = y.mean(0) if self.intercept else torch.zeros_like(y[0])
        lam = penalty * self.variance / self.gram.shape[0]
        eye = torch.eye(self.gram.shape[0], dtype=self.gram.dtype)
        weight = torch.linalg.solve(self.gram + lam * eye, self.centred.T @ (y - y_mean))
        return weight, y_mean - self.mean @ weight
