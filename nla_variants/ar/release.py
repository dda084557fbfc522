"""The public NLA release's AR: the baseline AR (the target's blocks up to the extraction layer,
no final norm, a Linear(d, d) head) reading its template filled in and tokenised in one piece,
with the tokenizer's special tokens (a BOS where the tokenizer adds one), as that release's
training and inference code tokenise it. The baseline tokenises the template's pieces apart and
adds no special tokens; at a piece boundary the two can give different tokens, so an imported
release AR keeps its own convention (`nla_variants.public_layout`).

The default template is the release's. `max_explanation_tokens` still caps the explanation (its
first tokens are kept and decoded back before the template is filled).
"""

from __future__ import annotations

from collections.abc import Sequence

from nla_variants.ar.baseline import EXPLANATION_SLOT, BaselineAR, BaselineARConfig
from nla_variants.registry import register_ar


class ReleaseARConfig(BaselineARConfig):
    template: str = "Summary of the following text: <text>{explanation}</text> <summary>"


@register_ar("release", ReleaseARConfig)
class ReleaseAR(BaselineAR):
    """Explanations -> predicted vectors [B, d], the release's tokenisation."""

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
            out.append(list(self.tokenizer(before + text + after)["input_ids"]))
        return out
