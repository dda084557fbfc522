"""Activation injection: one mechanism, shared by every AV variant, for writing a vector into the
AV's residual stream at its placeholder token(s).

Four choices, all recorded in the checkpoint and searchable by a sweep (`av.injection.*`):
- `site`: where the vector enters. `embedding` (the NLA paper: it replaces the placeholder's input
  embedding) or an int k: the residual after block k (Activation Oracles use k=1; Patchscopes
  patch into a later layer, up to the extraction layer). Both are the residual entering block k
  (the embedding is k=0), so one forward pre-hook implements every site.
- `mode`: `replace` what is there, or `add` to it.
- `scale`: the norm the (direction of the) vector is written at: a number, `sqrt_d`, `data` (the
  dataset's median activation norm), `embed` (the mean token-embedding norm) or `match` (the
  norm of the residual already at that position, per row).
- `center`: `none`, `mean` (subtract the training mean before normalising: the shared direction
  of all activations is then not repeated in every injection) or `standardize` (also divide by the
  per-dimension std, so a few massive dimensions no longer dominate the direction).

Why it matters: a vector at the wrong norm is not read. For SmolLM2-135M layer 20 sqrt(d) = 24 is
a ninth of the residual norm (219) and an AV trained with it ignores the vector entirely.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.common.strict import Strict
from nla_variants.core.vectors import normalize

Scale = float | Literal["sqrt_d", "data", "embed", "match"]


class InjectionConfig(Strict):
    site: Literal["embedding"] | int = Field(
        "embedding", description="embedding, or k >= 1: the residual after block k"
    )
    mode: Literal["replace", "add"] = "replace"
    scale: Scale = Field("data", description="a number, sqrt_d, data, embed or match")
    center: Literal["none", "mean", "standardize"] = "none"

    @field_validator("site")
    @classmethod
    def _site(cls, site: str | int) -> str | int:
        if isinstance(site, int) and site < 0:
            raise ValueError(f"{site} is not a block: use 'embedding' or a block k >= 1")
        return site

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale: Scale) -> Scale:
        if isinstance(scale, int | float) and scale <= 0:
            raise ValueError(f"{scale} must be positive (or sqrt_d, data, embed, match)")
        return scale

    def check_target(self, num_layers: int) -> None:
        """The site is a block of an AV with `num_layers` blocks (the whole target)."""
        if self.block >= num_layers:
            raise NLAError(
                f"av.injection.site {self.site} is outside the target's {num_layers} blocks",
                f"use 'embedding' or a block between 1 and {num_layers - 1}",
            )

    @property
    def block(self) -> int:
        """The index of the block whose input receives the vector (0: the embedding)."""
        return 0 if self.site == "embedding" else int(self.site)


def resolve_scale(
    spec: Scale, d_model: int, data_norm: float | None, embed_norm: float | None
) -> float | None:
    """The fixed injection norm, or None for `match` (the norm of what is at the position)."""
    if isinstance(spec, int | float):
        if not math.isfinite(spec) or spec <= 0:
            raise NLAError(f"injection scale {spec} must be positive", "use e.g. 'data'")
        return float(spec)
    if spec == "match":
        return None
    if spec == "sqrt_d":
        return math.sqrt(d_model)
    if spec in ("data", "embed"):
        norm = data_norm if spec == "data" else embed_norm
        if norm is None or norm <= 0:
            raise NLAError(
                f"injection scale {spec!r} needs a positive {spec} norm, got {norm}",
                "use a number, 'sqrt_d' or 'match'",
            )
        return float(norm)
    raise NLAError(
        f"injection scale {spec!r} is not a number, 'sqrt_d', 'data', 'embed' or 'match'",
        "set av.injection.scale to one of those",
    )


def center(
    vectors: torch.Tensor, how: str, mean: torch.Tensor | None, std: torch.Tensor | None
) -> torch.Tensor:
    """Raw vectors [..., d] centred (and standardised) with the training statistics."""
    if how == "none":
        return vectors
    if mean is None or (how == "standardize" and std is None):
        raise NLAError(
            f"injection center {how!r} needs the training mean/std of the dataset",
            "build the AV inside a trial (it passes them) or set av.injection.center: none",
        )
    out = vectors.float() - mean.float()
    return out / std.float().clamp_min(1e-6) if how == "standardize" else out


def write(
    hidden: torch.Tensor,
    mask: torch.Tensor,
    values: torch.Tensor,
    mode: str,
    scale: float | None,
) -> torch.Tensor:
    """`hidden` [B, T, D] with the positions in `mask` [B, T] (k per row, in order) given the
    directions of `values` [B, k, D] at norm `scale` (None: each position's current norm),
    replacing or added to what is there."""
    counts = mask.sum(1)
    k = values.shape[1]
    if not bool((counts == k).all()):
        raise RuntimeError(
            f"injection expected {k} placeholder token(s) per sequence, found {counts.tolist()}"
        )
    d = hidden.shape[-1]
    values = values.reshape(-1, d).float()
    existing = hidden[mask].float()  # [B*k, D], row-major: row b's slots in order
    norm = existing.detach().norm(dim=-1, keepdim=True) if scale is None else scale
    new = normalize(values) * norm
    if mode == "add":
        new = existing + new
    return hidden.masked_scatter(mask.unsqueeze(-1), new.to(hidden.dtype))


class Injector:
    """Writes vectors at placeholder positions through a forward pre-hook on one block of a
    decoder. `active(mask, values)` arms it for the forward passes inside the block of code; a
    pass whose sequence does not cover the prompt (a KV-cached decoding step) is left alone, and
    leaving the context without a single write is an error, so injection never silently misses."""

    def __init__(self, cfg: InjectionConfig, scale: float | None, layers: nn.ModuleList) -> None:
        if not 0 <= cfg.block < len(layers):
            raise NLAError(
                f"injection site {cfg.site} is outside the AV's {len(layers)} blocks",
                f"use 'embedding' or a block between 1 and {len(layers) - 1}",
            )
        self.cfg, self.scale = cfg, scale
        self._armed: tuple[torch.Tensor, torch.Tensor] | None = None
        self._writes = 0
        self.handle = layers[cfg.block].register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict):
        if self._armed is None:
            return None
        mask, values = self._armed
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[:2] != mask.shape:  # a decoding step: the prompt is in the KV cache
            return None
        hidden = write(hidden, mask, values, self.cfg.mode, self.scale)
        self._writes += 1
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    @contextlib.contextmanager
    def active(self, mask: torch.Tensor, values: torch.Tensor) -> Iterator[None]:
        """Inject `values` [B, k, D] at `mask` [B, T] in the forward passes inside."""
        self._armed, self._writes = (mask, values), 0
        try:
            yield
        finally:
            self._armed = None
        if self._writes == 0:
            raise RuntimeError("injection never happened: no forward covered the placeholder")
