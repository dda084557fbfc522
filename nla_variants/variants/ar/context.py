"""The full-context AR: it reads the source prefix the activation came from as well as the
explanation, so the reward (-MSE of its prediction) only pays the AV for what the text alone does
not give (docs/method.md, "the AR is too smart": a quoting AV gains nothing the prefix did not
already supply). Report it beside `ar_empty_fve`: the same AR with an empty explanation.

Everything of the small AR (n_layers, dropout, head, finetune) applies; the defaults are the
baseline's full AR. The template holds `{source}` and `{explanation}` once each, in either order;
the prediction is read at the template's last token. The source keeps its last
`max_source_tokens` tokens (the end is where the activation was taken), and special-token
strings inside it are split as plain text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field, field_validator

from nla_variants.variants.ar.baseline import EXPLANATION_SLOT
from nla_variants.variants.ar.small import SmallAR, SmallARConfig
from nla_variants.variants.registry import BuildContext, register_ar

SOURCE_SLOT = "{source}"
_SLOTS = re.compile(r"(\{source\}|\{explanation\})")


class ContextARConfig(SmallARConfig):
    template: str = (
        "Text:\n{source}\n---\nNotes on what a language model is thinking at the end of the "
        "text:\n{explanation}\nThe model's hidden state:"
    )
    max_source_tokens: int = Field(256, ge=1, description="last tokens of the prefix kept")

    @field_validator("template")
    @classmethod
    def _two_slots(cls, template: str) -> str:
        for slot in (SOURCE_SLOT, EXPLANATION_SLOT):
            if template.count(slot) != 1:
                raise ValueError(f"the context AR template must contain {slot} exactly once")
        return template


@register_ar("context", ContextARConfig)
class ContextAR(SmallAR):
    """(explanations, source prefixes) -> predicted vectors [B, d]. A `ReadsSource`
    (nla_variants.variants.interfaces): the contract suite checks that the prefix matters."""

    contract_configs = {
        "source_last_lora": {
            "template": "{explanation}\n---\n{source}\nState:",
            "finetune": "lora",
            "lora_r": 2,
            "n_layers": 1,
        },
    }

    def __init__(self, cfg: ContextARConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        # literal pieces and slots in template order, e.g. ["Text:\n", "{source}", ...]
        self.pieces: list[str | list[int]] = [
            part if part in (SOURCE_SLOT, EXPLANATION_SLOT) else self._tok(part)
            for part in _SLOTS.split(cfg.template)
        ]
        if self.bos_ids:  # the BOS rule (BaselineAR)
            self.pieces.insert(0, list(self.bos_ids))

    def metadata(self) -> dict:
        fixed = sum(len(p) for p in self.pieces if isinstance(p, list))
        return {**super().metadata(), "template_tokens": fixed}

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids, special-token strings split as plain text (a prefix may hold them)."""
        enc = self.tokenizer(list(texts), add_special_tokens=False, split_special_tokens=True)
        return [list(ids) for ids in enc["input_ids"]]

    def source_ids(self, sources: Sequence[str]) -> list[list[int]]:
        """The last `max_source_tokens` token ids of each prefix: what the AR reads of it."""
        return [ids[-self.cfg.max_source_tokens :] for ids in self._encode(sources)]

    def sequences(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> list[list[int]]:
        """Template token ids with the (capped) explanation and the prefix's last tokens."""
        if sources is None or len(sources) != len(explanations):
            raise ValueError(
                "the context AR needs one source prefix per explanation "
                f"(got {None if sources is None else len(sources)} for {len(explanations)})"
            )
        cap = self.cfg.max_explanation_tokens
        out = []
        for text, source in zip(self._encode(explanations), self.source_ids(sources), strict=True):
            fill = {EXPLANATION_SLOT: text[:cap], SOURCE_SLOT: source}
            seq: list[int] = []
            for piece in self.pieces:
                seq += fill[piece] if isinstance(piece, str) else piece
            out.append(seq)
        return out
