"""A plugin metric in one file: does the AV's explanation name the last word of its text?

The vector is read at the prefix's last token, so the word there is the one thing it surely
carries. Each row scores 1 if the explanation names that word, else 0 (an explanation whose tag
never closed states nothing: 0); the metric is their mean. Import this module before the trial
runs (or name it in the `nla_variants.metrics` entry-point group), then every evaluation reports
`eval/last_word_rate`, a sweep may report and optimise it, and `nla compare` gives it intervals
over rows.
"""

from __future__ import annotations

import re

from nla_variants.evaluation.metrics import EvalData, register_metric

_WORD = re.compile(r"[A-Za-z0-9]+")


@register_metric(
    "last_word_rate",
    higher=True,
    description="share of explanations that name the last word of their text",
    per_row=True,
)
def last_word_rate(ev: EvalData) -> list[float]:
    """One value per eval row, in order: 1.0 where the explanation names the word."""
    out = []
    for prefix, explanation in zip(ev.prefixes, ev.explanations, strict=True):
        words = _WORD.findall(prefix.lower())
        said = set(_WORD.findall((explanation or "").lower()))
        out.append(float(bool(words) and words[-1] in said))
    return out
