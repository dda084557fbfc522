"""Rules for prose (narrative, expository, technical, and the words inside dialogue turns).

Why: prose is predicted by its point of view and register (feature 2) and by the state of the
last sentence: an open quote or bracket, a just-ended sentence, or the word class of the last word
(feature 3), which decides what kind of word must come next.
"""

from __future__ import annotations

import re
from collections import Counter

from .analysis import Doc
from .common import (
    ABBREVIATIONS,
    AUXILIARIES,
    BRACKET_NAMES,
    CONJUNCTIONS,
    DETERMINERS,
    FUNCTION_WORDS,
    GENRE_WINDOW,
    OPENERS,
    PARA_WINDOW,
    PREPOSITIONS,
    QUOTE_NAMES,
    SPEECH_VERBS,
    STOPWORDS,
    SUBJECTS,
    WORD_ENDINGS,
    Picker,
    last_words,
    lower_first,
    q,
)

_RE_CAPWORD = re.compile(r"\b[A-Z][a-z]{2,}\b")
_RE_IDENT_TOKEN = re.compile(r"-{0,2}[A-Za-z_][\w.-]*")
_RE_TAIL_WORD = re.compile(r"[^\W\d_][\w'-]*$")
_RE_SQ_OPEN = re.compile(r"(?:^|(?<=[\s(\[{\u2014-]))'(?=\w)")
_RE_SQ_CLOSE = re.compile(r"(?<=[\w.,!?])'(?=[\s.,;:!?)\]}\u2014-]|$)")
_RE_CURLY_CLOSE = re.compile(r"\u2019(?![A-Za-z])")
_RE_PROSE_BRACKET = re.compile(r"[()\[\]{}]")

# ---------------------------------------------------------------------------------------------
# Feature 2: point of view and register
# ---------------------------------------------------------------------------------------------


def narrative_context(doc: Doc, pk: Picker) -> str | None:
    win = doc.win[-GENRE_WINDOW:]
    counts = Counter(w for w in _RE_CAPWORD.findall(win) if w.lower() not in STOPWORDS)
    name = max(counts, key=lambda w: (counts[w], w)) if counts else None
    if name and counts[name] < 2:
        name = None
    n = q(name, 16) if name else None
    if doc.sub == "first":
        return pk.say("narr_first_named" if n else "narr_first", name=n)
    if n:
        return pk.say("narr_third_named", n=n)
    if pk.flip(50):
        return pk.say("narr_third")
    return None


def expository_context(doc: Doc, pk: Picker) -> str | None:
    if doc.sub == "news":
        return pk.say("expo_news")
    if pk.flip(50):
        return pk.say("expo_neutral")
    return None


def _identifier(win: str) -> str | None:
    """The last identifier-like token (snake_case, dotted or a --flag) in the text tail."""
    for tok in reversed(win[-300:].split()):
        m = _RE_IDENT_TOKEN.search(tok)
        tok = m.group().rstrip(".-") if m else ""
        if len(tok) > 2 and ("_" in tok or "." in tok or tok[:2] == "--"):
            return q(tok.strip("-"), 24, keep_end=False)
    return None


def technical_context(doc: Doc, pk: Picker) -> str | None:
    if doc.fence_open:
        return pk.say("tech_fence")
    ident = _identifier(doc.win)
    if doc.sub == "install":
        return pk.say("tech_install")
    if ident:
        return pk.say("tech_ident", ident=ident)
    return None


# ---------------------------------------------------------------------------------------------
# Feature 3: the end of the text
# ---------------------------------------------------------------------------------------------


def _prose_open_state(para: str) -> tuple[str, int] | None:
    """The innermost unclosed quote or bracket in a paragraph: (opening char, position)."""
    opens: list[tuple[str, int]] = []
    if para.count('"') % 2 == 1:
        opens.append(('"', para.rfind('"')))
    if para.count("\u201c") > para.count("\u201d"):
        opens.append(("\u201c", para.rfind("\u201c")))
    if "\u2018" in para and para.count("\u2018") > len(_RE_CURLY_CLOSE.findall(para)):
        opens.append(("\u2018", para.rfind("\u2018")))
    if "'" in para:
        sq_open = list(_RE_SQ_OPEN.finditer(para))
        if len(sq_open) > len(_RE_SQ_CLOSE.findall(para)):
            opens.append(("'", sq_open[-1].start()))
    stack: list[tuple[str, int]] = []
    has_bracket = "(" in para or "[" in para or "{" in para
    for m in _RE_PROSE_BRACKET.finditer(para) if has_bracket else ():
        c = m.group()
        if c in "([{":
            stack.append((c, m.start()))
        elif stack and stack[-1][0] == OPENERS[c]:
            stack.pop()
    if stack:
        opens.append(stack[-1])
    return max(opens, key=lambda o: o[1]) if opens else None


_WORD_CLASSES = (
    (DETERMINERS, "follow_determiner"),
    (frozenset({"to"}), "follow_to"),
    (PREPOSITIONS, "follow_preposition"),
    (AUXILIARIES, "follow_auxiliary"),
    (SUBJECTS, "follow_subject"),
    (CONJUNCTIONS, "follow_conjunction"),
    (SPEECH_VERBS, "follow_speech_verb"),
)


def _word_class_follow(word: str, pk: Picker) -> str:
    """What the word class of the last word calls for next."""
    w = word.lower().strip(".,;:'\"")
    for words, key in _WORD_CLASSES:
        if w in words:
            return pk.say(key)
    if w.endswith("ly") and len(w) > 4:
        return pk.say("follow_adverb")
    return pk.say("follow_other")


def _after_line_break(pk: Picker, stripped: str, trailing: str) -> str:
    prev_line = stripped.rsplit("\n", 1)[-1].strip()
    lw = last_words(prev_line)
    if trailing.count("\n") >= 2:
        return pk.say("prose_paragraph_break", lw=lw)
    if prev_line and len(prev_line) < 60 and prev_line[-1:] not in '.!?,;"”':
        return pk.say("prose_after_heading", lw=lw)
    return pk.say("prose_line_break", lw=lw)


def _after_quote(pk: Picker, stripped: str, lw: str, genre: str) -> str:
    """A closing quote right after sentence punctuation."""
    if stripped[-2] == ",":
        return pk.say("prose_quote_comma", lw=lw)
    return pk.say("prose_dialogue_closed" if genre == "narrative" else "prose_quote_ended", lw=lw)


def _after_sentence(pk: Picker, stripped: str, last_tok: str, lw: str, lt: str) -> str:
    """Sentence punctuation: an abbreviation, a list number, a question or a full stop."""
    c = stripped[-1]
    base = last_tok.rstrip('.!?"\u201d)').lower()
    if c == "." and base in ABBREVIATIONS:
        return pk.say("prose_abbreviation", lt=lt)
    at_line_start = stripped[: -len(last_tok)].endswith("\n") or len(stripped) == len(last_tok)
    if c == "." and last_tok[:-1].isdigit() and len(last_tok) <= 4 and at_line_start:
        return pk.say("prose_list_number", lt=lt)
    if c == "?" or stripped[-2:-1] == "?":
        return pk.say("prose_question", lw=lw)
    return pk.say("prose_sentence_end", lw=lw)


def _after_word(pk: Picker, stripped: str, last_tok: str, lw: str, space: bool) -> str:
    """The text ends on a letter: a whole word (what its class calls for) or a cut word."""
    word = _RE_TAIL_WORD.search(stripped[-60:])
    wtxt = word.group() if word else last_tok
    wq = q(wtxt, 18)
    lower = wtxt.lower()
    if space or lower in FUNCTION_WORDS:
        follow = _word_class_follow(lower, pk)
        key = "prose_function_word" if lower in FUNCTION_WORDS else "prose_word_space"
        return pk.say(key, lw=lw, wq=wq, follow=follow)
    whole = lower in STOPWORDS or lower in SPEECH_VERBS
    if whole or (len(lower) >= 5 and lower.endswith(WORD_ENDINGS)):
        follow = _word_class_follow(lower, pk)
        return pk.say("prose_whole_word", lw=lw, wq=wq, follow=follow)
    if len(lower) <= 2 or not lower.isascii():
        return pk.say("prose_cut_short_word", wq=wq)
    return pk.say("prose_cut_word", wq=wq)


_PUNCTUATION = {
    ",": "prose_comma",
    ":": "prose_colon",
    ";": "prose_semicolon",
    **dict.fromkeys("-\u2014\u2013", "prose_dash"),
    **dict.fromkeys("([{", "prose_bracket_open"),
    **dict.fromkeys(")]}", "prose_bracket_close"),
}


def prose_core(text: str, pk: Picker, genre: str) -> str:
    """End-state clause for prose-like text (no open quote/bracket handling)."""
    stripped = text.rstrip()
    trailing = text[len(stripped) :]
    if "\n" in trailing:
        return _after_line_break(pk, stripped, trailing)
    if not stripped:
        return "Nothing written yet; the first words of the document come next"
    lw = last_words(stripped)
    tail_toks = stripped[-80:].split()
    last_tok = tail_toks[-1] if tail_toks else stripped[-20:]
    lt = q(last_tok, 18)
    c = stripped[-1]
    if c in "\"\u201d'\u2019" and len(stripped) > 1 and stripped[-2] in ",.?!":
        return _after_quote(pk, stripped, lw, genre)
    if c in ".!?" or (c in '"\u201d)' and stripped[-2:-1] in (".", "!", "?")):
        return _after_sentence(pk, stripped, last_tok, lw, lt)
    if c in _PUNCTUATION:
        lwc = lw[:-1] if lw.endswith(",") else lw
        return pk.say(_PUNCTUATION[c], lw=lw, lwc=lwc, what=BRACKET_NAMES.get(c))
    if c.isdigit():
        return pk.say("prose_number", lt=lt)
    if c.isalpha():
        return _after_word(pk, stripped, last_tok, lw, bool(trailing))
    return pk.say("prose_other", lw=lw)


def prose_end(doc: Doc, pk: Picker, text: str | None = None) -> str:
    text = doc.win if text is None else text
    stripped = text.rstrip()
    para = stripped[-PARA_WINDOW:]
    k = para.rfind("\n\n")
    if k >= 0:
        para = para[k + 2 :]
    if doc.genre == "dialogue":
        para = para.rsplit("\n", 1)[-1]
    core = prose_core(text, pk, doc.genre)
    if text != stripped and "\n" in text[len(stripped) :]:
        return core  # quotes and brackets do not survive a line break here
    state = _prose_open_state(para)
    if state is None:
        return core
    ch, pos = state
    at_end = pos == len(para) - 1
    slots = {"core": core, "core_lc": lower_first(core)}
    if ch in BRACKET_NAMES:
        return core if at_end else pk.say_fit("inside_bracket", what=BRACKET_NAMES[ch], **slots)
    what = QUOTE_NAMES[ch]
    speech = "quoted speech" if doc.genre in ("narrative", "dialogue") else "a quotation"
    if at_end:
        lw = last_words(para[:-1])
        if not lw:
            return pk.say("quote_opens_line", what=what)
        return pk.say("quote_just_opened", what=what, lw=lw, Speech=speech[0].upper() + speech[1:])
    return pk.say_fit("inside_quote", what=what, speech=speech, **slots)
