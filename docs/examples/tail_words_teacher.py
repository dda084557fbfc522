"""A plugin teacher in one file: explanations that name the document's length and its last words.

It reads nothing but the text, like the heuristic teacher, and far less: a floor for teachers
(an AR trained on it learns where a prefix ends, not what it is about). Import this module before
the config loads (or name it in the `nla_variants.teachers` entry-point group), then select it:

    teacher:
      kind: tail_words
      tail_words: {words: 3}
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field

from nla_variants.common.strict import Strict
from nla_variants.data.teachers.base import Teacher, parse_explanation
from nla_variants.data.teachers.registry import TeacherContext, register_teacher

_WORD = re.compile(r"[A-Za-z0-9]+")


class TailWordsTeacherConfig(Strict):
    """The `teacher.tail_words:` section. Every field has a default."""

    words: int = Field(4, ge=1, le=12, description="how many of the last words to quote")


@register_teacher("tail_words", config=TailWordsTeacherConfig)
class TailWordsTeacher(Teacher):
    """Two features per prefix: its length in words, and its last words."""

    def __init__(self, cfg: TailWordsTeacherConfig, ctx: TeacherContext) -> None:
        super().__init__()
        self.cfg = cfg

    def fingerprint(self) -> dict:
        """Everything that changes the output (part of the dataset's address)."""
        return {"name": self.name, "words": self.cfg.words, "version": 1}

    def explain(self, prefixes: Sequence[str]) -> list[str | None]:
        out: list[str | None] = []
        for prefix in prefixes:
            words = _WORD.findall(prefix)
            tail = " ".join(words[-self.cfg.words :]) or "nothing"
            answer = parse_explanation(
                f"A text of about {len(words)} words.\nIt ends with the words {tail}."
            )
            out.append(answer)
            self.stats.requested += 1
            self.stats.produced += answer is not None
            self.stats.dropped += answer is None
        return out
