"""The teacher interface: anything that writes warm-start explanations for text prefixes.

Every teacher produces the same format, so the AV/AR warm start never cares who wrote the data:
2-3 short features, one per line, about what a language model must be tracking at the end of the
prefix to predict the next tokens; the last feature is about the very end of the prefix. Plain
text, no markup. `parse_explanation` is the one validator all teachers go through.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

INSTRUCTION = """You will see the beginning of a document, cut off at an arbitrary point.
Imagine a language model that has read exactly this text and must predict what comes next.
Describe what it is most likely tracking at the very end of the text, as 2 or 3 short features.

Rules:
- One feature per line, each a short phrase or sentence of at most 25 words.
- Features 1-2: the kind of document, its topic, register or structure that shape the continuation.
- The last feature: the very end of the text (the last words, any open quote, bracket, list item or
  code block, an unfinished sentence) and what must come next.
- Plain text only: no numbering, bullets, headings, quotes around features, or markdown.
- Output only the features, nothing else."""

MAX_FEATURES = 3
MIN_FEATURES = 2
MAX_FEATURE_WORDS = 30
MAX_FEATURE_CHARS = 240

_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|\(\d+\)|feature\s*\d+\s*:)\s*", re.IGNORECASE)
_MARKUP = re.compile(r"(\*\*|__|^#+\s|</?[a-zA-Z][^>]*>|```)")


def parse_explanation(text: str | None) -> str | None:
    """Normalise a teacher answer to the warm-start format, or None when it is malformed.

    Strips list markers and surrounding blank lines; rejects answers with fewer than 2 or more
    than 3 features, over-long features, or markup. Returns the features joined by newlines.
    """
    if not text:
        return None
    lines = [ln.strip() for ln in text.strip().splitlines()]
    features = [_LIST_MARKER.sub("", ln).strip() for ln in lines if ln]
    features = [f for f in features if f]
    if not MIN_FEATURES <= len(features) <= MAX_FEATURES:
        return None
    for f in features:
        if len(f) > MAX_FEATURE_CHARS or len(f.split()) > MAX_FEATURE_WORDS or _MARKUP.search(f):
            return None
    return "\n".join(features)


@dataclass
class TeacherStats:
    """Counts a teacher keeps while it works; written to the dataset sidecar."""

    requested: int = 0
    produced: int = 0
    dropped: int = 0  # malformed, truncated or failed answers (never a crash)
    cache_hits: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


class Teacher(ABC):
    """Writes warm-start explanations. Subclasses set `name` and implement `explain`."""

    name: str = "abstract"

    def __init__(self) -> None:
        self.stats = TeacherStats()
        # Of the last `explain` call: how many prefixes got no answer at all (the service could
        # not be reached or failed), as opposed to an answer that was dropped as malformed. A
        # caller that stores explanations must not store these Nones as final (they are not the
        # teacher's verdict on the prefix); `last_error` says why, secrets removed.
        self.unanswered: int = 0
        self.last_error: str | None = None

    @abstractmethod
    def explain(self, prefixes: Sequence[str]) -> list[str | None]:
        """One explanation per prefix, in order; None where the answer was dropped or, counted in
        `unanswered`, never came."""

    def check(self) -> None:  # noqa: B027 - optional hook
        """Prove the teacher can work (e.g. one cheap API request) before expensive stages;
        raise NLAError if it cannot."""

    def fingerprint(self) -> dict:
        """What determines this teacher's output; part of the dataset's content address."""
        return {"name": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients, threads or models."""
