"""Truncation sampling and document-disjoint splits.

Each document is cut at k prefix lengths drawn uniformly (without replacement) from
[min_prefix, min(len, max_tokens)]; the activation is taken at the prefix's last token. Splits are
assigned per document, so no document contributes to two splits. Both draws are keyed on
(seed, doc_id), so a document's positions and split do not depend on what else is in the corpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nla_variants.data.documents import Document


def _doc_key(seed: int, doc_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{doc_id}".encode()).digest()[:8], "little")


@dataclass(frozen=True)
class DocPlan:
    """What the pipeline does with one document: its split and its prefix lengths (sorted)."""

    doc: Document
    split: str
    prefix_lengths: tuple[int, ...]


def assign_splits(docs: Sequence[Document], fractions: dict[str, float], seed: int) -> list[str]:
    """Exact-count split assignment: documents ordered by a seeded hash of their id, then cut at
    the cumulative fractions (so even a small corpus gets the requested proportions)."""
    order = sorted(range(len(docs)), key=lambda i: _doc_key(seed, docs[i].doc_id))
    names = [s for s, f in fractions.items() if f > 0]
    bounds = np.round(np.cumsum([fractions[s] for s in names]) * len(docs)).astype(int)
    out = [""] * len(docs)
    start = 0
    for name, end in zip(names, bounds, strict=True):
        for rank in range(start, end):
            out[order[rank]] = name
        start = end
    return out


def sample_prefix_lengths(
    n_tokens: int, k: int, min_prefix: int, max_tokens: int, seed: int, doc_id: str
) -> tuple[int, ...]:
    """k distinct prefix lengths in [min_prefix, min(n_tokens, max_tokens)], or () if too short."""
    hi = min(n_tokens, max_tokens)
    if hi < min_prefix:
        return ()
    rng = np.random.default_rng([seed, _doc_key(seed, doc_id)])
    choices = np.arange(min_prefix, hi + 1)
    picked = rng.choice(choices, size=min(k, len(choices)), replace=False)
    return tuple(sorted(int(p) for p in picked))


def plan_documents(
    docs: Sequence[Document],
    token_counts: Sequence[int],
    *,
    positions_per_doc: int,
    min_prefix: int,
    max_tokens: int,
    fractions: dict[str, float],
    seed: int,
) -> list[DocPlan]:
    """Plans for every document long enough to give at least one prefix, in corpus order."""
    splits = assign_splits(docs, fractions, seed)
    plans = []
    for doc, n, split in zip(docs, token_counts, splits, strict=True):
        lengths = sample_prefix_lengths(
            n, positions_per_doc, min_prefix, max_tokens, seed, doc.doc_id
        )
        if lengths:
            plans.append(DocPlan(doc, split, lengths))
    return plans
