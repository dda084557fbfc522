"""Reading a prefix: genre scores, sub-genre, speakers, script and topic words.

Why: every feature writer needs the same facts about the text tail, so they are computed once per
prefix here (`Doc`), from surface rules only: the teacher never sees genre labels.
"""

from __future__ import annotations

import re
from collections import Counter

from .common import (
    CHAT_ROLES,
    CODE_STOP,
    GENRE_WINDOW,
    RE_DIGITS,
    RE_JSON_KEY,
    RE_KV_LINE,
    RE_LIST_LINE,
    RE_QUOTE_LINE,
    RE_SPEAKER_LINE,
    STOPWORDS,
    WINDOW,
    WORDS,
    q,
)

_GENRE_WINDOW_LINES = 550  # chars the genre scores read when the text has many short lines
_RECENT_WORDS = 60  # the last words, whose content words get a recency bonus as topics

_M = re.MULTILINE
_RE_CODE_STRONG = re.compile(
    r"^[ \t]*(?:def \w+\(|class \w+[(:]|import \w|from [\w.]+ import\b|return\b|elif\b|>>> |"
    r"except\b|raise \w|yield\b|pass$|try:|else:|finally:|@\w+|async def\b|if __name__)",
    _M,
)
_RE_CODE_WEAK = re.compile(r"^[ \t]*(?:if|for|while|with) [^\n]*:[ \t]*$", _M)
_RE_INDENT = re.compile(r"^(?: {2,}|\t)\S", _M)
_RE_ASSIGN = re.compile(r"^[ \t]*[A-Za-z_][\w.\[\]'\"]*[ \t]*(?:=|\+=|-=)[ \t]*[^=\s]", _M)
_CODE_OPS = ("==", "()", "):", "->", "None", "self.")
_RE_PIPE_LINE = re.compile(r"^[^\n]*\|[^\n]*\|", _M)
_RE_SPEECH_ATTR = re.compile(
    r"[,.?!][\"\u201d]\s+(?:he|she|I|they|[A-Z][a-z]+) (?:\w+ )?[a-z]+ed\b"
    r"|[,.?!][\"\u201d]\s+\w+ said\b"
)
_RE_YEAR = re.compile(r"(?:19|20)\d\d\b")
_RE_DOT_IDENT = re.compile(r"\.[a-z_]")
_RE_FENCE = re.compile(r"^[ \t]*```", _M)
# Punctuation and digits to spaces: `text.translate(_WORD_SPLIT).split()` is a fast word tokenizer.
_WORD_SPLIT = str.maketrans(
    dict.fromkeys(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789"
        "\u201c\u201d\u2018\u2019\u2014\u2013\u2026\u00ab\u00bb\u201e\u201a\u2022\u00b7"
        "\u3001\u3002\uff0c\uff01\uff1f\uff1a\uff1b\uff08\uff09"
        "\u300c\u300d\u300e\u300f\u3010\u3011",
        " ",
    )
)

# Word lexicons for the prose genres, counted in one pass over the window's word counts.
_PAST, _PRON3, _PRON1, _NNOUN, _PRESENT, _NEWS, _TECH, _RECIPE = range(8)
LEX: dict[str, tuple[int, ...]] = {}
for _cat, _words in enumerate(WORDS["lexicons"].values()):
    for _w in _words:
        LEX[_w] = (*LEX.get(_w, ()), _cat)


# Unicode ranges of the non-Latin scripts a prefix may be written in: (name, first, last).
_SCRIPTS = tuple((name, int(lo, 16), int(hi, 16)) for name, lo, hi in WORDS["scripts"])


def _script_name(o: int) -> str:
    return next((name for name, lo, hi in _SCRIPTS if lo <= o <= hi), "non-Latin")


def _script_of(text: str) -> str | None:
    """Name of the dominant non-Latin script, when most letters are not ASCII."""
    sample = text[-400:]
    if sample.isascii() or len(sample.encode("ascii", "ignore")) > 0.8 * len(sample):
        return None
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return None
    non_ascii = [c for c in letters if ord(c) > 0x24F]
    if len(non_ascii) < 0.4 * len(letters):
        return None
    counts = Counter(_script_name(ord(c)) for c in non_ascii)
    if counts.get("Japanese kana", 0) * 10 >= len(non_ascii):
        return "Japanese"  # kanji and kana mixed
    return max(counts, key=counts.__getitem__)


class Doc:
    """Everything the feature writers need, computed once per prefix."""

    __slots__ = (
        "text",
        "win",
        "lines",
        "cur",
        "genre",
        "sub",
        "scores",
        "fence_open",
        "speakers",
        "script",
        "words",
        "wcounts",
    )

    def __init__(self, text: str) -> None:
        self.text = text
        win = text[-WINDOW:]
        if "\r" in win:
            win = win.replace("\r\n", "\n").replace("\r", "\n")
        self.win = win
        self.lines = win.split("\n")
        self.cur = self.lines[-1]
        self.fence_open = "```" in win and len(_RE_FENCE.findall(win)) % 2 == 1
        self.speakers: list[str] = []
        self.words: list[str] = []
        self.wcounts: Counter[str] = Counter()
        self.script = _script_of(win) if win.strip() else None
        self.genre, self.sub, self.scores = _classify(self)


def _speaker_tags(win: str) -> list[str]:
    """Speaker names of the turns in `win`, in order.

    A `Name: value` line is a turn when the value reads like an utterance (several words or
    sentence punctuation), the tag is `<name>` or a chat role, or the same name has such turns
    elsewhere; a lone short value is a labelled field ("Age: 34"), not a turn.
    """
    items = []
    full = set()
    for m in RE_SPEAKER_LINE.finditer(win):
        name = (m.group(1) or m.group(2) or "").strip()
        if not name:
            continue
        rest = m.group(3).rstrip()
        if m.group(1) or rest.count(" ") >= 2 or rest[-1:] in ".?!," or name.lower() in CHAT_ROLES:
            full.add(name)
        items.append(name)
    return [name for name in items if name in full]


class _Window:
    """The text the genre scores read, and the counts that several scores share."""

    def __init__(self, doc: Doc, g: str) -> None:
        if g.count("\n") > 24:  # line-oriented text: fewer characters already hold enough lines
            g = g[-_GENRE_WINDOW_LINES:]
        self.g = g
        self.lines = [ln for ln in g.split("\n") if ln.strip()]
        self.n = len(self.lines)
        self.low = g.lower()
        words = self.low.translate(_WORD_SPLIT).split()
        doc.words, doc.wcounts = words, Counter(words)
        self.nw = max(1, len(words))
        # Lexicon counts: only the distinct words that are in some lexicon are visited.
        self.cat = [0] * 8
        for w in doc.wcounts.keys() & LEX.keys():
            for k in LEX[w]:
                self.cat[k] += doc.wcounts[w]
        self.cat[_PAST] += self.low.count("ed ") + self.low.count("ed.") + self.low.count("ed,")
        self.has_colon = ":" in g
        self.has_quote = '"' in g or "\u201c" in g or "\u2014" in g
        self.nums = len(RE_DIGITS.findall(g)) if any(d in g for d in "0123456789") else 0

    def count(self, rx: re.Pattern[str]) -> int:
        """Lines matching a line-anchored regex; per line when there are few (cheaper)."""
        if self.n <= 8:
            return sum(1 for ln in self.lines if rx.match(ln))
        return len(rx.findall(self.g))

    def rate(self, k: int) -> float:
        return self.cat[k] / self.nw


def _code_score(w: _Window, f: dict[str, float]) -> float:
    g, n = w.g, w.n
    f["strong"] = strong = w.count(_RE_CODE_STRONG)
    colon_end = sum(1 for ln in w.lines if ln.rstrip()[-1:] == ":") if w.has_colon else 0
    weak = w.count(_RE_CODE_WEAK) if colon_end else 0
    indented = "\n " in g or "\n\t" in g or g[:1] in " \t"
    f["indent"] = indent = w.count(_RE_INDENT) if indented else 0
    assign = w.count(_RE_ASSIGN) if "=" in g else 0
    selfdot = g.count("self.")
    ops = sum(g.count(o) for o in _CODE_OPS) - selfdot
    sym = sum(g.count(c) for c in "()[]{}=_") / max(1, len(g))
    code = (
        3 * strong + 2 * weak + 1.5 * selfdot + colon_end + 0.6 * indent + assign + 0.5 * ops
    ) / n
    return code + (6 * sym + min(1.0, 0.5 * strong))


def _structured_score(w: _Window, f: dict[str, float]) -> float:
    g, n, nw = w.g, w.n, w.nw
    f["pipes"] = pipes = w.count(_RE_PIPE_LINE) if "|" in g else 0
    f["lists"] = lists = w.count(RE_LIST_LINE)
    f["kv"] = kv = w.count(RE_KV_LINE) if w.has_colon or "=" in g else 0
    f["jkeys"] = jkeys = len(RE_JSON_KEY.findall(g)) if '":' in g or '" :' in g else 0
    commas = g.count(",") + g.count("\t") + g.count(";")
    f["recipe"] = recipe = w.cat[_RECIPE]
    f["comma_ratio"] = comma_ratio = min(1.0, commas / nw)
    short = sum(1 for ln in w.lines if len(ln) < 45) / n
    long_lines = sum(1 for ln in w.lines if len(ln) > 80) / n
    score = (2 * pipes + 1.3 * lists + 0.8 * kv + 1.5 * jkeys) / n
    score += 2.5 * max(0.0, comma_ratio - 0.15) + 1.5 * min(1.0, w.nums / nw) + 0.6 * short
    return score + (min(1.0, 4 * recipe / nw) - 0.8 * long_lines - 1.2 * min(1, f["strong"]))


def _dialogue_score(doc: Doc, w: _Window, f: dict[str, float]) -> float:
    g, n = w.g, w.n
    # Indented lines are code or nested records, never speaker turns.
    turns = (w.has_colon or ">" in g) and f["indent"] * 2 < n
    doc.speakers = tags = _speaker_tags(g) if turns else []
    f["roles"] = roles = sum(1 for t in tags if t.lower() in CHAT_ROLES)
    qlines = w.count(RE_QUOTE_LINE) if w.has_quote else 0
    distinct = len(set(tags))
    f["attr"] = attr = len(_RE_SPEECH_ATTR.findall(g)) if w.has_quote else 0
    score = (2.2 * len(tags) + 1.5 * roles + 1.3 * max(0, qlines - 2 * attr)) / n
    if distinct >= 2:
        score += 0.5
    elif distinct == 1 and len(tags) < 3:
        score *= 0.5
    return score


def _prose_scores(doc: Doc, w: _Window, f: dict[str, float]) -> tuple[float, float, float]:
    """(narrative, expository, technical)."""
    g, nw = w.g, w.nw
    years = len(_RE_YEAR.findall(g)) if "19" in g or "20" in g else 0
    f["news"] = news = (w.cat[_NEWS] + years + g.count("%")) / nw
    dots = len(_RE_DOT_IDENT.findall(g))
    f["ident"] = ident = (g.count("_") + g.count("()") + g.count(" --") + dots) / nw
    narrative = (
        5 * w.rate(_PAST)
        + 4 * w.rate(_PRON3)
        + 2 * w.rate(_PRON1)
        + 6 * w.rate(_NNOUN)
        + 0.3 * min(f["attr"], 3)
    )
    expository = 0.25 + 3 * w.rate(_PRESENT) + 5 * news + min(0.3, 0.6 * w.nums / nw)
    technical = 5 * w.rate(_TECH) + 8 * ident + 0.3 * doc.fence_open
    return narrative, expository, technical + min(1.0, 5 * g.count("`") / nw)


def _documentation(w: _Window, scores: dict[str, float]) -> None:
    """Prose-heavy text with code lines, fences or inline code is documentation, not a code file."""
    if scores["code"] <= 0.8:
        return
    prose_lines = sum(
        1
        for ln in w.lines
        if len(ln) > 50 and ln.count(" ") >= 7 and ln[:1] not in " \t#" and " the " in ln
    )
    if prose_lines / w.n > 0.2 or (w.g.count("`") >= 3 and prose_lines):
        scores["technical"] += 0.4 * scores["code"]
        scores["code"] *= 0.5


def _subgenre(genre: str, w: _Window, f: dict[str, float]) -> str | None:
    if genre == "structured":
        if f["pipes"] >= 2:
            return "table"
        if f["jkeys"] >= 2:
            return "json"
        if f["recipe"] >= 3:
            return "recipe"
        if f["comma_ratio"] > 0.4 and w.n >= 2:
            return "csv"
        if f["lists"] >= 2:
            return "list"
        return "kv" if f["kv"] >= 2 else None
    if genre == "dialogue":
        return "chat" if f["roles"] >= 2 else None
    if genre == "narrative":
        if w.rate(_PRON1) > w.rate(_PRON3):
            return "first"
        return "past" if w.rate(_PAST) > w.rate(_PRESENT) else None
    if genre == "expository":
        news, present = f["news"], w.rate(_PRESENT)
        return "news" if news * 5 > 3 * present and news > 0.02 else None
    if genre == "technical":
        if "install" in w.low or "pip " in w.low or "$ " in w.g:
            return "install"
        if f["ident"] > 0.03 and ("param" in w.low or "return" in w.low or "argument" in w.low):
            return "api"
    return None


def _classify(doc: Doc) -> tuple[str, str | None, dict[str, float]]:
    """(genre, sub-genre or None, score per genre) from the last `GENRE_WINDOW` characters."""
    g = doc.win[-GENRE_WINDOW:]
    if not g.strip():
        return "expository", None, {}
    w = _Window(doc, g)
    f: dict[str, float] = {}
    code = _code_score(w, f)
    scores = {"code": code, "structured": _structured_score(w, f)}
    scores["dialogue"] = _dialogue_score(doc, w, f)
    scores["narrative"], scores["expository"], scores["technical"] = _prose_scores(doc, w, f)
    _documentation(w, scores)
    line_genre = max(("code", "structured", "dialogue"), key=scores.__getitem__)
    if scores[line_genre] >= 1.0:
        genre = line_genre
    else:
        genre = max(("narrative", "expository", "technical"), key=scores.__getitem__)
    return genre, _subgenre(genre, w, f), scores


def topics(doc: Doc, exclude: set[str]) -> list[str]:
    """The 2-3 most salient content words: frequency in the window, recent words counted twice."""
    if not doc.wcounts:
        return []
    combo = Counter(doc.wcounts)
    combo.update(doc.words[-_RECENT_WORDS:])
    code_like = doc.genre in ("code", "technical", "structured")
    # The last word may be cut mid-way ("Beca"): never a topic unless seen before.
    partial = doc.words[-1] if doc.win[-1:].isalpha() and doc.words else None
    found: list[tuple[int, bool, str]] = []
    for w, c in combo.most_common():
        if len(found) >= 8 or (len(found) >= 3 and c < found[2][0]):
            break
        if (
            2 < len(w) <= 18
            and w.isalpha()
            and (len(w) <= 4 or w[0] < "\u2e80")  # a CJK run is a phrase, not a word
            and w not in STOPWORDS
            and w not in exclude
            and not (code_like and w in CODE_STOP)
            and not (w == partial and doc.wcounts[w] == 1)
            and not (len(w) >= 5 and w.endswith(("ed", "ly")))  # verbs and adverbs, not topics
            and _PAST not in LEX.get(w, ())
        ):
            found.append((c, len(w) >= 6, w))
    # Ties prefer longer words, then alphabetical order: never the order of a hash-seeded set.
    found.sort(key=lambda t: (-t[0], not t[1], t[2]))
    top = [w for _, _, w in found[:3]]
    if len(top) == 3 and found[2][0] * 3 < found[0][0]:
        top = top[:2]
    # Names keep their capital: a word seen only capitalised in the window.
    seg = doc.win[-GENRE_WINDOW:]
    top = [w.capitalize() if w not in seg and w.capitalize() in seg else w for w in top]
    return [q(w, 18, keep_end=False) for w in top]
