"""A closed-form AR readout: refit the AR's linear head by ridge regression on its own features.

Why: a few dozen SGD steps barely move a 576 x 576 head that starts at the identity (the
quickstart's AR at 40 x 16 reads teacher text at FVE ~0). The least-squares head on the frozen
features of the same training rows costs one forward pass per row and is the best linear
readout of those features, so a short AR warm start can end on it (`train.ar_sft.ridge`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

import torch
from torch import nn
from tqdm.auto import tqdm

from nla_variants.common.errors import NLAError
from nla_variants.core.ridge import Ridge
from nla_variants.core.vectors import baseline_mse, fve, mean_direction, normalize, normalized_mse


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


@contextmanager
def head_inputs(ar: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect what the AR's linear head reads in the calls made inside (float32, on the CPU)."""
    seen: list[torch.Tensor] = []
    hook = linear_head(ar).register_forward_hook(
        lambda m, args, out: seen.append(args[0].detach().float().cpu())
    )
    try:
        yield seen
    finally:
        hook.remove()


@torch.no_grad()
def head_features(
    ar: nn.Module,
    explanations: Sequence[str],
    sources: Sequence[str] | None,
    batch_size: int,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    bar: str | None = None,
) -> torch.Tensor:
    """What the head reads for each explanation, [N, d_in] float32. `bar`: the title of a
    progress bar over the rows (thousands of AR forwards: a minute or more on a CPU)."""
    was_training = ar.training
    ar.eval()
    n = len(explanations)
    try:
        with (
            head_inputs(ar) as seen,
            tqdm(total=n, desc=bar, unit="row", leave=False, disable=bar is None) as done,
        ):
            for s in range(0, n, batch_size):
                srcs = None if sources is None else list(sources[s : s + batch_size])
                with autocast():
                    ar(list(explanations[s : s + batch_size]), srcs)
                done.update(min(batch_size, n - s))
    finally:
        ar.train(was_training)
    return torch.cat(seen)


@torch.no_grad()
def fit_head(head: nn.Linear, feats: torch.Tensor, vectors: torch.Tensor, penalty: float) -> float:
    """Set `head` to the ridge readout (`core.ridge.Ridge`) from these head features to the
    unit activations (the AR is scored on direction only); returns the fit's training FVE.
    A head without a bias (the release AR's) is fitted without an intercept: a fitted bias
    would carry the mean direction, which a bias-free head must get from its weight."""
    vectors = vectors.float().cpu()
    intercept = head.bias is not None
    weight, bias = Ridge(feats.cpu(), intercept).solve(normalize(vectors), penalty)
    head.weight.copy_(weight.T.to(head.weight.dtype))
    if head.bias is not None:
        head.bias.copy_(bias.to(head.bias.dtype))
    pred = (feats.cpu().double() @ weight + bias).float()
    return fve(normalized_mse(pred, vectors), baseline_mse(vectors, mean_direction(vectors)))


READOUT_FIGURES = ("ridge_rows", "ridge_train_fve")  # what refit_head reports


@torch.no_grad()
def refit_head(
    ar: nn.Module,
    explanations: Sequence[str],
    vectors: torch.Tensor,
    sources: Sequence[str] | None,
    penalty: float,
    batch_size: int = 64,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
    bar: str | None = None,
) -> dict[str, float]:
    """Set the AR's head to the ridge readout of its own features of these rows. Returns the
    rows used and the fit's training FVE."""
    head = linear_head(ar)
    feats = head_features(ar, explanations, sources, batch_size, autocast, bar)
    train_fve = fit_head(head, feats, vectors, penalty)
    return dict(zip(READOUT_FIGURES, (float(len(explanations)), train_fve), strict=True))
