"""Text metrics: explanation tag extraction, quote rate, length statistics."""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from functools import cache

OPEN_TAG = "<explanation>"
CLOSE_TAG = "</explanation>"

_WORD = re.compile(r"\w+", re.UNICODE)


def wrap_explanation(text: str, open_tag: str = OPEN_TAG, close_tag: str = CLOSE_TAG) -> str:
    return f"{open_tag}\n{text.strip()}\n{close_tag}"


def extract_explanation(
    text: str, open_tag: str = OPEN_TAG, close_tag: str = CLOSE_TAG
) -> str | None:
    """The text between the first open tag and the next close tag; None when the tag is not
    closed (or is empty): such a generation is a failed extraction."""
    start = text.find(open_tag)
    if start < 0:
        return None
    start += len(open_tag)
    end = text.find(close_tag, start)
    if end < 0:
        return None
    body = text[start:end].strip()
    return body or None


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def quote_rate(explanation: str, source: str, n: int = 3) -> float:
    """Share of the explanation's word n-grams that also occur in the source text (0 when the
    explanation has fewer than n words). High values mean the AV quotes instead of explaining."""
    grams = ngrams(words(explanation), n)
    if not grams:
        return 0.0
    source_grams = set(ngrams(words(source), n))
    return sum(g in source_grams for g in grams) / len(grams)


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Word-count statistics of explanations."""
    counts = [len(words(t)) for t in texts]
    if not counts:
        return {"mean": 0.0, "median": 0.0, "max": 0.0}
    return {
        "mean": float(statistics.fmean(counts)),
        "median": float(statistics.median(counts)),
        "max": float(max(counts)),
    }


@cache
def _pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def names(text: str, spellings: Sequence[str]) -> bool:
    """Does `text` name any of `spellings` as a whole word (case-insensitive)?"""
    return any(_pattern(s).search(text) for s in spellings if s)
