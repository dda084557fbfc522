"""The unit every corpus source yields."""

from __future__ import annotations

from dataclasses import dataclass

GENRES = ("narrative", "dialogue", "expository", "technical", "code", "structured")


@dataclass(frozen=True)
class Document:
    """One corpus document. `doc_id` is stable across runs (splits and shards key on it);
    `genre` is a label later used as a probe target (None when the source has no labels)."""

    doc_id: str
    text: str
    genre: str | None = None
    source: str = ""
