"""The public NLA release's AR: the baseline AR (the target's blocks up to the extraction layer,
no final norm, a Linear(d, d) head) reading its template filled in and tokenised in one piece,
with the tokenizer's special tokens, as that release's training and inference code tokenise it.
The baseline tokenises the template's pieces apart and adds no special tokens; at a piece
boundary the two can give different tokens, so an imported release AR keeps its own convention
(`nla_variants.artifacts.public_layout`).

Two more rules make an export of it read by the release's own rules exactly as we read it:

- **No head bias.** The release's value head is a bias-free Linear, so this one is too (a
  closed-form readout fits it without an intercept, `training/readout.py`). A bias would carry
  the mean direction, most of every vector, and a bias-free reader would drop it.
- **A declared BOS is read first.** The release reads with special tokens and requires that a
  tokenizer with a BOS token prepends it. Where a tokenizer declares BOS but does not prepend it
  (SmolLM2's), this AR prepends it anyway, and the export writes a tokenizer that does.

The default template is the release's. `max_explanation_tokens` still caps the explanation (its
first tokens are kept and decoded back before the template is filled).
"""

from __future__ import annotations

from collections.abc import Sequence

from nla_variants.variants.ar.baseline import EXPLANATION_SLOT, BaselineAR, BaselineARConfig
from nla_variants.variants.registry import BuildContext, register_ar


class ReleaseARConfig(BaselineARConfig):
    template: str = "Summary of the following text: <text>{explanation}</text> <summary>"


def declared_bos(tokenizer: object) -> list[int]:
    """[BOS id] where the tokenizer declares a BOS token, else []."""
    bos = getattr(tokenizer, "bos_token_id", None)
    return [] if bos is None else [bos]


def release_token_ids(tokenizer: object, text: str) -> list[int]:
    """The release's reading of a filled template: tokenised with special tokens, a declared
    BOS first (prepended where the tokenizer itself does not)."""
    ids = list(tokenizer(text)["input_ids"])
    bos = declared_bos(tokenizer)
    return ids if ids[:1] == bos else bos + ids


@register_ar("release", ReleaseARConfig)
class ReleaseAR(BaselineAR):
    """Explanations -> predicted vectors [B, d], the release's tokenisation and bias-free head."""

    head_bias = False
    # in the AR's warm-start cache key (training/warm_cache.py): a release AR warm-started
    # before its head lost its bias and it read a declared BOS first is never reused
    warm_start_revision = "bias-free head, declared BOS first"

    def __init__(self, cfg: ReleaseARConfig, ctx: BuildContext) -> None:
        super().__init__(cfg, ctx)
        self.bos_ids = declared_bos(self.tokenizer)
        self.before_ids = self.bos_ids + self._tok(cfg.template.split(EXPLANATION_SLOT)[0])

    def sequences(
        self, explanations: Sequence[str], sources: Sequence[str] | None = None
    ) -> list[list[int]]:
        before, after = self.cfg.template.split(EXPLANATION_SLOT)
        cap = self.cfg.max_explanation_tokens
        out = []
        for text in explanations:
            ids = self._tok(text)
            if len(ids) > cap:
                text = self.tokenizer.decode(ids[:cap])
            out.append(release_token_ids(self.tokenizer, before + text + after))
        return out
