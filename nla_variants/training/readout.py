"""A closed-form AR readout: refit the AR's linear head by ridge regression on its own features.

Why: a few dozen SGD steps barely move a 576 x 576 head that starts at the identity (the
quickstart's AR at 40 x 16 reads teacher text at FVE ~0). The least-squares head on the frozen
features of the same training rows costs one forward pass per row and is the best linear
readout of those features, so a short AR warm start can end on it (`train.ar_sft.ridge`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

from nla_variants.core.vectors import baseline_mse, fve, mean_direction, normalize, normalized_mse
from nla_variants.errors import NLAError


def linear_head(ar: nn.Module) -> nn.Linear:
    """The AR's `head`, which the refit replaces; an AR without a plain linear head cannot."""
    head = getattr(ar, "head", None)
    if not isinstance(head, nn.Linear):
        raise NLAError(
            f"train.ar_sft.ridge needs an AR with a linear head; {type(ar).__name__} has "
            f"{type(head).__name__ if head is not None else 'none'}",
            "drop train.ar_sft.ridge, or use the baseline/context AR (small: head identity)",
        )
    return head


@torch.no_grad()
def head_features(
    ar: nn.Module,
    explanations: Sequence[str],
    sources: Sequence[str] | None,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> torch.Tensor:
    """What the head reads for each explanation, [N, d_in] float32 (captured by a hook)."""
    head = linear_head(ar)
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, args, out: seen.append(args[0].float().cpu()))
    was_training = ar.training
    ar.eval()
    try:
        for s in range(0, len(explanations), batch_size):
            srcs = None if sources is None else list(sources[s : s + batch_size])
            with autocast():
                ar(list(explanations[s : s + batch_size]), srcs)
    finally:
        hook.remove()
        ar.train(was_training)
    return torch.cat(seen)


@torch.no_grad()
def refit_head(
    ar: nn.Module,
    explanations: Sequence[str],
    vectors: torch.Tensor,
    sources: Sequence[str] | None,
    penalty: float,
    batch_size: int = 64,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> dict[str, float]:
    """Set the head to argmin |H W + b - Y|^2 + lam |W|^2 over the rows, Y the unit activations
    (the AR is scored on direction only). `penalty` is lam relative to the mean feature variance,
    so one value suits any model's scale. Returns the rows used and the fit's training FVE."""
    head = linear_head(ar)
    vectors = vectors.float().cpu()  # the fit runs on the CPU, where head_features puts them
    feats = head_features(ar, explanations, sources, batch_size, autocast).double()
    targets = normalize(vectors).double()
    f_mean, t_mean = feats.mean(0), targets.mean(0)
    centred = feats - f_mean
    gram = centred.T @ centred
    lam = penalty * gram.trace() / gram.shape[0]
    weight = torch.linalg.solve(
        gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), centred.T @ (targets - t_mean)
    )
    bias = t_mean - f_mean @ weight
    head.weight.copy_(weight.T.to(head.weight.dtype))
    head.bias.copy_(bias.to(head.bias.dtype))
    pred = (feats @ weight + bias).float()
    mean = mean_direction(vectors)
    train_fve = fve(normalized_mse(pred, vectors), baseline_mse(vectors, mean))
    return {"ridge_rows": float(len(explanations)), "ridge_train_fve": train_fve}
