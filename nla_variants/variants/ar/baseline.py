"""The baseline Activation Reconstructor: the target truncated to the extraction layer's blocks
(no final norm) plus a Linear(d, d) head initialised to the identity; it reads a fixed template
around the explanation and predicts the activation at the template's last token.

With the `hidden_states[l]` layer convention the AR keeps exactly the l blocks that produced the
activation, so at step 0 it predicts the residual of the template's last token, a vector of the
right space, and the identity head leaves its direction unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pydantic import Field, field_validator
from torch import nn

from nla_variants.common.strict import Strict
from nla_variants.core.padding import pad_right
from nla_variants.core.vectors import normalized_mse
from nla_variants.target import decoder_blocks, load_lm, tokenizer_adds_bos, truncated_backbone
from nla_variants.variants.registry import BuildContext, register_ar

EXPLANATION_SLOT = "{explanation}"


class BaselineARConfig(Strict):
    template: str = (
        "Notes on what a language model is thinking:\n{explanation}\nThe model's hidden state:"
    )
    max_explanation_tokens: int = Field(128, ge=8)

    @field_validator("template")
    @classmethod
    def _explanation_slot(cls, template: str) -> str:
        if template.count(EXPLANATION_SLOT) != 1:
            raise ValueError(f"the AR template must contain {EXPLANATION_SLOT} exactly once")
        return template


@register_ar("baseline", BaselineARConfig)
class BaselineAR(nn.Module):
    """Explanations -> predicted vectors [B, d]."""

    head_bias = True  # the release AR's head has none (its format's value head is bias-free)

    def __init__(self, cfg: BaselineARConfig, ctx: BuildContext) -> None:
        super().__init__()
        if cfg.template.count(EXPLANATION_SLOT) != 1:
            raise ValueError(f"the AR template must contain {EXPLANATION_SLOT} exactly once")
        self.cfg = cfg
        lm, self.tokenizer = load_lm(ctx.source)
        self.backbone = truncated_backbone(lm, ctx.layer)
        self.head = nn.Linear(ctx.d_model, ctx.d_model, bias=self.head_bias)
        with torch.no_grad():
            self.head.weight.copy_(torch.eye(ctx.d_model))
            if self.head.bias is not None:
                self.head.bias.zero_()
        before, after = cfg.template.split(EXPLANATION_SLOT)
        # the BOS rule: a tokenizer that prepends BOS (Gemma's, Llama-3's) gets it here too, as
        # the release's AR reads its template (Gemma's blocks need it at position 0)
        self.bos_ids = [self.tokenizer.bos_token_id] if tokenizer_adds_bos(self.tokenizer) else []
        self.before_ids = self.bos_ids + self._tok(before)
        self.after_ids = self._tok(after)
        self.pad_id = self.tokenizer.pad_token_id or 0

    def _tok(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def metadata(self) -> dict:
        return {
            "blocks": len(decoder_blocks(self.backbone)),
            "template_tokens": len(self.before_ids) + len(self.after_ids),
        }

    def sequences(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> list[list[int]]:
        """Token ids of the template around each explanation (explanation capped in length,
        the template's end always kept: that is where the prediction is read)."""
        cap = self.cfg.max_explanation_tokens
        return [self.before_ids + self._tok(e)[:cap] + self.after_ids for e in explanations]

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> torch.Tensor:
        seqs = self.sequences(explanations, sources)
        device = self.device
        ids, mask = pad_right(seqs, self.pad_id, device)
        hidden = self.backbone(input_ids=ids, attention_mask=mask, use_cache=False)
        hidden = hidden.last_hidden_state
        last = hidden[torch.arange(len(seqs), device=device), mask.sum(1) - 1]
        # the head runs in fp32 even under bf16 autocast: a fitted head (training/readout.py)
        # cancels a large mean (the massive dimensions) that bf16's 8 bits would not survive
        with torch.autocast(device.type, enabled=False):
            return self.head(last.float())

    def loss(
        self,
        explanations: Sequence[str],
        vectors: torch.Tensor,
        sources: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Normalised MSE (2(1 - cos)) between prediction and activation, batch mean."""
        return normalized_mse(self(explanations, sources), vectors).mean()
