"""A trained NLA (the AV and the AR with what is needed to feed and score them), and a reference
to one that is found and checked before any weights are loaded.

Every way to get an NLA (a run directory, a sweep's best trial, an `nla export` directory, the
public release layout) ends in the same `NLA`, so `nla explain`, `nla export` and the evaluation
never care where it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class NLARef:
    """Where an NLA is and what it reads, found without loading weights (so bad input fails
    fast). `kind`: run | export | public; `detail` holds what that kind's loader needs."""

    kind: str
    path: Path
    target: str  # the model whose activations the NLA reads (a `target.model` spec)
    layer: int  # this project's convention: hidden_states[layer]
    diff_model: str | None = None  # trained on (diff_model - target) activations
    add_bos: bool = False  # activations were taken with the tokenizer's BOS token prepended
    target_fingerprint: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class NLA:
    """An AV/AR pair ready to read activations of `target` at `layer`."""

    av: nn.Module
    ar: nn.Module | None
    ref: NLARef
    # the mean training direction (the FVE baseline), or a function that reads it when first
    # asked: a run's dataset takes about a second to read, and steering never needs it
    mean: torch.Tensor | Callable[[], torch.Tensor | None] | None = field(default=None, repr=False)
    teacher: dict[str, Any] | None = None  # the warm-start teacher (the text-only baseline)
    metrics: dict[str, float] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # dataset provenance (model card)
    note: str = ""  # which weights these are, e.g. "warm start (RL weights not kept)"

    @cached_property
    def train_mean(self) -> torch.Tensor | None:
        return self.mean() if callable(self.mean) else self.mean

    @property
    def d_model(self) -> int:
        return int(self.av.lm.get_input_embeddings().weight.shape[1])
