"""A small / regularised AR: the baseline with each way of making it weaker as its own knob.

The research question (docs/method.md, "the AR is too smart"): a strong AR rebuilds the activation
from quoted text, so the AV is rewarded for quoting. Limiting the AR (fewer blocks, dropout,
weight decay, a narrow head, adapter-only training) may force explanations to carry more.

Knobs (all defaults reproduce the baseline):
- `n_layers`: blocks kept (1 .. extraction layer; None = the layer). Fewer blocks read the
  template's last token at an earlier residual, with less depth to decode the explanation.
- `dropout`: on the residual stream after the embeddings and after every kept block (so also on
  the residual the head reads). Active only while training with gradients, so RL reward scoring (under no_grad) is
  deterministic even though the AR is in train mode there.
- `head`: `identity` (Linear(d, d) initialised to the identity), `lowrank` (x + U V x + b with
  U zero-initialised: the identity at step 0, a rank-`head_rank` learnable correction) or
  `bottleneck` (U V x + b: the prediction lies in a learned `head_rank`-dim subspace; initialised
  to the orthogonal projection onto a random one).
- `finetune`: `full`, `lora` (peft adapters on every linear of the kept blocks, plus the head),
  `head` (backbone frozen) or `auto` (the default: `lora` for a target above
  `nla_variants.variants.large_models.LORA_AUTO_THRESHOLD` parameters, else `full`; resolved at build time).
- Weight decay is the optimiser's: `train.ar_sft.weight_decay` (warm start).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.target import decoder_parts
from nla_variants.variants.ar.baseline import BaselineAR, BaselineARConfig
from nla_variants.variants.large_models import resolve_finetune
from nla_variants.variants.registry import BuildContext, TargetDims, register_ar


class SmallARConfig(BaselineARConfig):
    n_layers: int | None = Field(None, ge=1, description="blocks kept; None: the extraction layer")
    dropout: float = Field(0.0, ge=0, lt=1, description="residual dropout (training only)")
    head: Literal["identity", "lowrank", "bottleneck"] = "identity"
    head_rank: int = Field(64, ge=1, description="rank of a lowrank / bottleneck head")
    finetune: Literal["auto", "full", "lora", "head"] = Field(
        "auto", description="auto: lora above LORA_AUTO_THRESHOLD target parameters, else full"
    )
    lora_r: int = Field(8, ge=1)
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)

    def check_target(self, dims: TargetDims) -> None:
        """The blocks kept are blocks that made the vector; a narrow head is narrower than d."""
        if self.n_layers is not None and self.n_layers > dims.layer:
            raise NLAError(
                f"ar.n_layers={self.n_layers} is more than the extraction layer {dims.layer}",
                f"use 1..{dims.layer} (the small AR keeps at most the blocks that made the vector)",
            )
        if self.head != "identity" and self.head_rank >= dims.d_model:
            raise NLAError(
                f"ar.head_rank={self.head_rank} is not below d_model={dims.d_model}",
                f"use a rank below {dims.d_model}, or head: identity",
            )


class LowRankHead(nn.Module):
    """x + U V x + b, U zero-initialised: the identity at step 0, corrections of rank r."""

    def __init__(self, d: int, r: int) -> None:
        super().__init__()
        self.down = nn.Linear(d, r, bias=False)
        self.up = nn.Linear(r, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.down(x))


class BottleneckHead(nn.Module):
    """U V x + b: every prediction lies in an r-dim subspace (initially a random orthogonal
    projection, so the prediction starts as the part of the residual in that subspace)."""

    def __init__(self, d: int, r: int) -> None:
        super().__init__()
        self.down = nn.Linear(d, r, bias=False)
        self.up = nn.Linear(r, d)
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(d, r))
            self.down.weight.copy_(q.T)
            self.up.weight.copy_(q)
            self.up.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))


def _linear_leaf_names(module: nn.Module) -> list[str]:
    return sorted(
        {n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, nn.Linear)}
    )


@register_ar("small", SmallARConfig)
class SmallAR(BaselineAR):
    """Explanations -> predicted vectors [B, d], through a deliberately limited reconstructor."""

    contract_configs = {
        "shallow_lowrank_dropout": {
            "n_layers": 1,
            "head": "lowrank",
            "head_rank": 8,
            "dropout": 0.1,
        },
        "bottleneck_head_only": {"head": "bottleneck", "head_rank": 8, "finetune": "head"},
        "lora": {"finetune": "lora", "lora_r": 2},
    }

    def __init__(self, cfg: SmallARConfig, ctx: BuildContext) -> None:
        # `auto` resolved and kept resolved: checkpoints and exports rebuild what was built
        cfg = cfg.model_copy(update={"finetune": resolve_finetune(cfg.finetune, ctx.source)})
        cfg.check_target(TargetDims(ctx.source.num_layers, ctx.d_model, ctx.layer))
        super().__init__(cfg, ctx)
        d = ctx.d_model
        n = ctx.layer if cfg.n_layers is None else cfg.n_layers
        _, blocks, _ = decoder_parts(self.backbone)
        setattr(self.backbone, blocks, nn.ModuleList(list(getattr(self.backbone, blocks))[:n]))
        self.n_blocks = n

        if cfg.head != "identity":
            self.head = (LowRankHead if cfg.head == "lowrank" else BottleneckHead)(d, cfg.head_rank)

        self._drop = nn.Dropout(cfg.dropout)
        if cfg.dropout > 0:
            self.backbone.get_input_embeddings().register_forward_hook(self._dropout_hook)
            for block in getattr(self.backbone, blocks):
                block.register_forward_hook(self._dropout_hook)

        if cfg.finetune == "head":
            self.backbone.requires_grad_(False)
        elif cfg.finetune == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                lora_dropout=cfg.lora_dropout,
                target_modules=_linear_leaf_names(getattr(self.backbone, blocks)),
            )
            inject_adapter_in_model(lora, self.backbone)
            for name, p in self.backbone.named_parameters():
                p.requires_grad_("lora_" in name)

    def _dropout_active(self) -> bool:
        return self.training and self.cfg.dropout > 0 and torch.is_grad_enabled()

    def _dropout_hook(self, module: nn.Module, args, output):
        if not self._dropout_active():
            return None
        if isinstance(output, tuple):
            return (self._drop(output[0]), *output[1:])
        return self._drop(output)

    def metadata(self) -> dict:
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {**super().metadata(), "blocks": self.n_blocks, "trainable_params": trainable}
