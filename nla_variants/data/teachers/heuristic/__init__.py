"""The heuristic teacher: rule-based warm-start explanations derived from the prefix text alone.

Why: the NLA warm start needs an explanation for every prefix, and an LLM teacher is slow, costs
money and needs a network. This teacher is deterministic, offline and fast (thousands of prefixes a
second on one core), so it serves as the default for smoke tests, CI and ablations that only need
the explanation *format* and a plausible signal, and as a baseline for the model-written teachers.

It never sees genre labels. Every feature comes from scored surface rules over the tail of the text
(`analysis`), written by per-genre rule modules (`code`, `prose`, `records`, `dialogue`):

1. genre/register (code, dialogue, structured, technical, narrative, expository) plus the 2-3 most
   salient content words (frequency with a bias to recent text, stopwords removed);
2. optionally a structure/context feature (enclosing function and class, table columns, speakers,
   point of view, document sub-type);
3. the end state: open quotes and brackets, string literals, code blocks, mid-word cuts, the word
   class of the last word, sentence/line/row ends, and what must come next.

Word lists are `words.yaml` and every phrasing is a template in `phrases.yaml`. Phrasing varies:
each feature picks among several templates with a hash of (seed, prefix), so the same prefix always
gives the same explanation but the corpus is not one sentence repeated. Every output goes through
`parse_explanation`; quoted snippets are sanitised so it always passes.
Bump `VERSION` whenever a rule, word list or template changes (it is part of the dataset content
address).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from nla_variants.data.teachers.base import Teacher, parse_explanation

from .analysis import Doc, topics
from .code import code_context, code_end
from .common import DROP, PHRASES, RE_SPACES, RE_UNDERSCORES, Picker, clip, join_words
from .dialogue import dialogue_context, dialogue_end
from .prose import expository_context, narrative_context, prose_end, technical_context
from .records import structured_context, structured_end

__all__ = ["VERSION", "HeuristicTeacher"]

VERSION = "1"

_Doc = Doc  # the name the tests use

_CONTEXT: dict[str, Callable[[Doc, Picker], str | None]] = {
    "code": code_context,
    "dialogue": dialogue_context,
    "structured": structured_context,
    "narrative": narrative_context,
    "expository": expository_context,
    "technical": technical_context,
}
_FALLBACK = "\n".join(PHRASES["fallback"])


def _feature_genre(doc: Doc, pk: Picker) -> str:
    """Feature 1: the genre or sub-genre, with the salient topic words."""
    key = f"sub_{doc.sub}" if doc.sub and pk.flip(60) else f"genre_{doc.genre}"
    g = pk.say(key)
    if doc.script:
        g += f" in {doc.script} script"
    exclude = {s.lower() for s in doc.speakers} if doc.genre == "dialogue" else set()
    words = topics(doc, exclude)
    if words:
        return pk.say("topic", g=g, t=join_words(words))
    return pk.say("no_topic", g=g)


def _feature_end(doc: Doc, pk: Picker) -> str:
    """Feature 3: the very end of the prefix and what must come next."""
    if doc.genre == "code" or doc.fence_open:
        return code_end(doc, pk)
    if doc.genre == "structured":
        out = structured_end(doc, pk)
        if out:
            return out
    if doc.genre == "dialogue":
        out = dialogue_end(doc, pk)
        if out:
            return out
    return prose_end(doc, pk)


def _safe(feature: str) -> str:
    """Last-resort sanitiser for a feature the validator rejected."""
    f = RE_UNDERSCORES.sub("_", feature.translate(DROP))
    f = re.sub(r"[^\w\s.,;:!?'()\-]", " ", f)
    return clip(RE_SPACES.sub(" ", f).strip().lstrip("-0123456789.() ")) or "More text follows"


class HeuristicTeacher(Teacher):
    """Deterministic, offline, rule-based teacher; see the module docstring."""

    name = "heuristic"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = int(seed)
        self._key = f"heuristic-{VERSION}-{self.seed}".encode()

    def fingerprint(self) -> dict:
        return {"name": self.name, "version": VERSION, "seed": self.seed}

    def explain(self, prefixes: Sequence[str]) -> list[str | None]:
        out: list[str | None] = [self.explain_one(p) for p in prefixes]
        self.stats.requested += len(prefixes)
        self.stats.produced += sum(1 for o in out if o is not None)
        return out

    def explain_one(self, prefix: str) -> str:
        """The explanation for one prefix; always valid, never raises."""
        text = prefix if isinstance(prefix, str) else str(prefix or "")
        try:
            return self._explain(text)
        except Exception:  # a rule bug must not sink a dataset build; counted, and tests assert 0
            self.stats.extra["rule_errors"] = self.stats.extra.get("rule_errors", 0) + 1
            return _FALLBACK

    def _explain(self, text: str) -> str:
        pk = Picker(text, self._key)
        if not text.strip():
            return "\n".join(pk.pick(PHRASES["empty"]))
        doc = Doc(text)
        features = [_feature_genre(doc, pk)]
        ctx = _CONTEXT[doc.genre](doc, pk)
        if ctx:
            features.append(ctx)
        features.append(_feature_end(doc, pk))
        features = [clip(f[:1].upper() + f[1:]) for f in features]
        joined = "\n".join(features)
        parsed = parse_explanation(joined)
        if parsed is not None and parsed == joined:
            return parsed
        features = [_safe(f) for f in features]
        parsed = parse_explanation("\n".join(features))
        return parsed if parsed is not None else _FALLBACK
