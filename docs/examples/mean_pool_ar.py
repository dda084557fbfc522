"""A mean-pooled embedding-bag Activation Reconstructor: the simplest AR that reads words.

Explanation tokens -> trainable word vectors, averaged, -> a linear map into the activation
space. It ignores word order and the source prefix, so it is a floor: any AR worth its compute
should beat it on `ar_teacher_fve`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field
from torch import nn
from transformers import AutoTokenizer

from nla_variants.common.strict import Strict
from nla_variants.core.vectors import normalized_mse
from nla_variants.variants.registry import BuildContext, register_ar


class MeanPoolARConfig(Strict):
    """Every field has a default: a trial (and the contract suite) can build it from nothing."""

    dim: int = Field(64, ge=1, description="width of the word vectors")
    max_explanation_tokens: int = Field(128, ge=8)


@register_ar("mean_pool", MeanPoolARConfig)
class MeanPoolAR(nn.Module):
    """Explanations -> predicted vectors [B, d_model]."""

    def __init__(self, cfg: MeanPoolARConfig, ctx: BuildContext) -> None:
        super().__init__()
        self.cfg = cfg  # the checkpoint records it and rebuilds the AR from it
        self.tokenizer = AutoTokenizer.from_pretrained(ctx.source.load_path)
        self.words = nn.EmbeddingBag(len(self.tokenizer), cfg.dim, mode="mean")
        self.head = nn.Linear(cfg.dim, ctx.d_model)

    def metadata(self) -> dict:
        """Plain data recorded in the checkpoint sidecar."""
        return {"vocab": len(self.tokenizer)}

    def sequences(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> list[list[int]]:
        """The token ids the AR reads (the warm start counts them as its throughput)."""
        ids = self.tokenizer(list(explanations), add_special_tokens=False)["input_ids"]
        # An empty explanation (the evaluation's text-only row) reads the end token alone.
        return [s[: self.cfg.max_explanation_tokens] or [self.tokenizer.eos_token_id] for s in ids]

    def forward(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> torch.Tensor:
        seqs = self.sequences(explanations, sources)
        device = self.head.weight.device
        flat = torch.tensor([t for s in seqs for t in s], device=device)
        starts = torch.tensor([0] + [len(s) for s in seqs[:-1]], device=device).cumsum(0)
        return self.head(self.words(flat, starts)).float()

    def loss(
        self,
        explanations: Sequence[str],
        vectors: torch.Tensor,
        sources: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """The platform's objective: normalised MSE, batch mean."""
        return normalized_mse(self(explanations, sources), vectors).mean()
