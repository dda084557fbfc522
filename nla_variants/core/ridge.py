"""Ridge regression on fixed features, solved in closed form (float64).

Why one place: the AR's closed-form readout (`training/readout.py`) and the faithfulness probes
(`faithfulness.py`) both fit a linear map from features to targets; the Gram matrix is the
costly part, so it is computed once and solved for any targets and penalties.
"""

from __future__ import annotations

import torch


class Ridge:
    """argmin |X W + b - Y|^2 + lam |W|^2 for features X [n, d]; `penalty` is lam relative to
    the mean feature variance (lam = penalty x trace(Xc^T Xc) / d), so one value suits any
    feature scale. The bias is unpenalised (the features are centred)."""

    def __init__(self, features: torch.Tensor) -> None:
        x = features.double()
        self.mean = x.mean(0)
        self.centred = x - self.mean
        self.gram = self.centred.T @ self.centred

    def solve(self, targets: torch.Tensor, penalty: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [d, k], bias [k]) in float64 for targets [n, k]."""
        y = targets.double()
        y_mean = y.mean(0)
        lam = penalty * self.gram.trace() / self.gram.shape[0]
        eye = torch.eye(self.gram.shape[0], dtype=self.gram.dtype)
        weight = torch.linalg.solve(self.gram + lam * eye, self.centred.T @ (y - y_mean))
        return weight, y_mean - self.mean @ weight
