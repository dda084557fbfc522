"""The optimiser every training loop here builds: AdamW, fused where torch has the kernel.

Why fused: torch's default AdamW walks the parameters one tensor at a time. For the AV's 134.5M
weights on one CPU thread that took 0.74 s a step, the fused kernel 0.18 s (benchmarks/peer.py,
issue 29). The update is the same arithmetic, so only float rounding order can differ.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adamw(
    params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float
) -> torch.optim.AdamW:
    """AdamW over `params`; fused when every one is a plain float tensor on a CPU or CUDA device
    (a sharded parameter, e.g. a DTensor, keeps the default implementation)."""
    params = list(params)
    fused = bool(params) and all(
        type(p) in (torch.Tensor, torch.nn.Parameter)
        and p.dtype.is_floating_point
        and p.device.type in ("cpu", "cuda")
        for p in params
    )
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
