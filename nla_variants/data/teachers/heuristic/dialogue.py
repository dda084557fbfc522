"""Rules for dialogue: who is talking, and whose turn or words come next.

Why: a transcript is predicted by its turn structure: the speakers so far, the tag just written,
and the alternation that makes the other speaker likely after a turn ends.
"""

from __future__ import annotations

from .analysis import Doc
from .common import RE_QUOTE_LINE, RE_SPEAKER_TAG, Picker, join_words, q
from .prose import prose_end


def _speaker_count(n: int) -> str:
    return "two speakers" if n == 2 else f"{n} speakers" if n > 2 else "one speaker"


def dialogue_context(doc: Doc, pk: Picker) -> str | None:
    tags = doc.speakers
    if not tags:
        if len(RE_QUOTE_LINE.findall(doc.win)) >= 2:
            return pk.say("quoted_turns")
        return None
    order = list(dict.fromkeys(tags))
    who = join_words([q(t, 16, keep_end=False) for t in order[-3:]])
    m = RE_SPEAKER_TAG.match(doc.cur)
    speaking = (m.group(1) or m.group(2)).strip() if m else None
    if speaking:
        s = q(speaking, 16, keep_end=False)
        return pk.say("speaking_now", who=who, s=s, kind=_speaker_count(len(order)))
    return pk.say("spoke_last", who=who, last=q(tags[-1], 16, keep_end=False))


def dialogue_end(doc: Doc, pk: Picker) -> str | None:
    cur = doc.cur
    m = RE_SPEAKER_TAG.match(cur)
    if m and not cur[m.end() :].strip():
        name = q((m.group(1) or m.group(2)).strip(), 16)
        tag = name if m.group(1) else name + ":"
        return pk.say("after_speaker_tag", tag=tag, name=name)
    if not cur.strip() and doc.speakers:
        tags = doc.speakers
        nxt = q(tags[-2], 16) if len(tags) >= 2 and tags[-2] != tags[-1] else None
        return pk.say("turn_ended", last=q(tags[-1], 16), nxt=nxt)
    if m:
        return prose_end(doc, pk, cur[m.end() :])
    return None
