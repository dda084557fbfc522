"""Shared benchmark helpers: the machine's measured matmul ceiling."""

from __future__ import annotations

import time

import torch


def matmul_ceiling(dtype: torch.dtype, n: int = 2048, reps: int = 20) -> float:
    """Sustained GFLOP/s of a square matmul at this dtype (the best of a few timed runs)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best
