"""Multi-token injection: the activation enters the AV through k placeholder tokens instead of one.

One injected token is little room for a residual vector (a token normally carries ~18 bits). This
variant gives the vector k consecutive placeholder slots, either as the same vector repeated
(`repeat`, no new parameters) or through a learned decomposition (`learned`): k per-slot linear
maps, each initialised to the identity, trained with the AV. Every slot is then normalised to the
injection norm like the baseline's single slot, so k=1 `learned` is the baseline at step 0, and
the maps only steer directions (they carry no bias, so they are blind to the vector's norm too).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from nla_variants.variants.av.baseline import BaselineAV, BaselineAVConfig
from nla_variants.variants.registry import BuildContext, register_av


class MultiTokenAVConfig(BaselineAVConfig):
    k: int = Field(4, ge=1, le=64, description="number of placeholder tokens the vector fills")
    mode: Literal["repeat", "learned"] = Field(
        "learned", description="repeat: the vector at every slot; learned: k trainable maps"
    )


@register_av("multitoken", MultiTokenAVConfig)
class MultiTokenAV(BaselineAV):
    """The baseline AV with k placeholder slots; the prompt holds k copies of the placeholder,
    verified by its neighbours and counted per row by the shared injection code."""

    cfg: MultiTokenAVConfig
    contract_configs = {
        "repeat": {"mode": "repeat", "k": 2},
        "lora": {"finetune": "lora"},
        "residual": {
            "injection": {"site": 2, "mode": "add", "scale": "match", "center": "standardize"}
        },
    }

    def __init__(self, cfg: MultiTokenAVConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx, n_slots=cfg.k)
        if cfg.mode == "learned":
            d = self.lm.get_input_embeddings().weight.shape[1]
            eye = torch.eye(d, dtype=torch.float32)
            # slot_maps[i] maps the vector to slot i's embedding: out_i = slot_maps[i] @ v
            self.slot_maps = nn.Parameter(eye.repeat(cfg.k, 1, 1))

    def vector_inputs(self, vectors: torch.Tensor) -> torch.Tensor:
        """[B, k, d]: the vector repeated, or its k learned images."""
        if self.cfg.mode == "repeat":
            return vectors.unsqueeze(1).expand(-1, self.cfg.k, -1)
        v = vectors.to(self.slot_maps.dtype)
        return torch.einsum("kij,bj->bki", self.slot_maps, v)

    def metadata(self) -> dict:
        return {**super().metadata(), "k": self.cfg.k, "mode": self.cfg.mode}
