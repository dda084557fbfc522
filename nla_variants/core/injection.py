"""Activation injection: replace placeholder-token input embeddings by the (scaled) vector.

The vector is L2-normalised and rescaled to `scale` before it replaces the embedding, so the AV
sees a direction at a fixed, configurable norm (the injection scale the sweep searches).
"""

from __future__ import annotations

import math

import torch

from nla_variants.core.vectors import normalize
from nla_variants.errors import NLAError


def resolve_injection_scale(
    spec: float | str, d_model: int, data_norm: float | None, embed_norm: float | None
) -> float:
    """`spec` is a number, `sqrt_d`, `data` (median norm of the dataset's vectors: the ambient
    residual norm) or `embed` (mean input-embedding norm of the AV's vocabulary)."""
    if isinstance(spec, int | float):
        return float(spec)
    if spec == "sqrt_d":
        return math.sqrt(d_model)
    if spec in ("data", "embed"):
        norm = data_norm if spec == "data" else embed_norm
        if norm is None or norm <= 0:
            raise NLAError(
                f"injection_scale {spec!r} needs a positive {spec} norm, got {norm}",
                "use a number or 'sqrt_d'",
            )
        return float(norm)
    raise NLAError(
        f"injection_scale {spec!r} is not a number, 'sqrt_d', 'data' or 'embed'",
        "set av.injection_scale to one of those",
    )


def inject(
    embeds: torch.Tensor,
    input_ids: torch.Tensor,
    placeholder_id: int,
    vectors: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """Embeddings [B, T, D] with every placeholder position replaced, in order, by `vectors`
    ([B, D] for one placeholder per row, or [B, k, D] for k). Asserts the per-row count: a
    prompt whose placeholder went missing would silently train on the raw token otherwise."""
    if vectors.dim() == 2:
        vectors = vectors.unsqueeze(1)
    mask = input_ids == placeholder_id
    counts = mask.sum(1)
    k = vectors.shape[1]
    if not bool((counts == k).all()):
        raise RuntimeError(
            f"injection expected {k} placeholder token(s) per sequence, found {counts.tolist()}"
        )
    values = normalize(vectors.float(), scale).to(embeds.dtype).reshape(-1, embeds.shape[-1])
    return embeds.masked_scatter(mask.unsqueeze(-1), values)
