"""The heuristic teacher: rule-based warm-start explanations derived from the prefix text alone.

Why: the NLA warm start needs an explanation for every prefix, and an LLM teacher is slow, costs
money and needs a network. This teacher is deterministic, offline and fast (thousands of prefixes a
second on one core), so it serves as the default for smoke tests, CI and ablations that only need
the explanation *format* and a plausible signal, and as a baseline for the model-written teachers.

It never sees genre labels. Every feature comes from scored surface rules over the tail of the text:

1. genre/register (code, dialogue, structured, technical, narrative, expository) plus the 2-3 most
   salient content words (frequency with a bias to recent text, stopwords removed);
2. optionally a structure/context feature (enclosing function and class, table columns, speakers,
   point of view, document sub-type);
3. the end state: open quotes and brackets, string literals, code blocks, mid-word cuts, the word
   class of the last word, sentence/line/row ends, and what must come next.

Phrasing varies: each feature picks among several templates with a hash of (seed, prefix), so the
same prefix always gives the same explanation but the corpus is not one sentence repeated. Every
output goes through `parse_explanation`; quoted snippets are sanitised so it always passes.
Bump `VERSION` whenever a rule or template changes (it is part of the dataset content address).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

from nla_variants.data.teachers.base import MAX_FEATURE_CHARS, Teacher, parse_explanation

VERSION = "1"

_T = TypeVar("_T")

MAX_WORDS = 25  # per feature; stricter than the validator's limit
_WINDOW = 2400  # chars of the prefix tail that the rules read
_GENRE_WINDOW = 800  # chars the genre scores and topic words read
_GENRE_WINDOW_LINES = 550  # ... when the text has many short lines
_RECENT_WORDS = 60  # the last words, whose content words get a recency bonus as topics
_CODE_SCAN = 1200  # chars of code scanned for open strings, comments and brackets
_PARA_WINDOW = 900  # chars of the last paragraph scanned for open quotes and brackets

# ---------------------------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------------------------


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS = _wordset(
    """
    a about above after again against all almost also although always am among an and another any
    anyone anything are around as at away back be became because become been before being below
    between both but by came can cannot could did do does doing done down during each either else
    enough even ever every few first for from further get gets getting got had has have having he
    her here hers herself him himself his how however i if in into is it its itself just last least
    less let like made make many may me might more most much must my myself near neither never new
    next no nor not now of off often on once one only onto or other others our ours ourselves out
    over own per perhaps quite rather really said same say says see seemed seems shall she should
    since so some something sometimes still such than that the their theirs them themselves then
    there these they thing things this those though through thus to too toward towards under until
    up upon us use used very via was way we well went were what whatever when where whether which
    while who whom whose why will with within without would yet you your yours yourself
    yourselves also just like back even still know think go going come take want look
    oh yes yeah okay ok hey hi hello well right sure thanks thank please sorry really
    mr mrs ms dr st etc e g ie eg vs
    one two three four five six seven eight nine ten first second third
    maybe always again already course anyway actually everything nothing someone something
    """
)

# Identifiers and keywords that carry no topic in code or docs.
_CODE_STOP = _wordset(
    """
    def class import from return self cls none true false elif else try except finally raise yield
    pass break continue lambda with assert async await global nonlocal del print len range str int
    float bool dict list set tuple isinstance super init args kwargs object type name value values
    key keys item items get append data result results res tmp val var obj func fn arg param
    params kw opt opts x y z i j k n m foo bar baz new main test tests
    """
)

_DETERMINERS = _wordset(
    "the a an this these those my your his her its our their some any every each no another "
    "several many few all both"
)
_PREPOSITIONS = _wordset(
    "of in on at for with from by about into onto over under through between after before during "
    "without within against across toward towards among upon behind beside near around like than "
    "via per along beyond beneath above below inside outside throughout"
)
_AUXILIARIES = _wordset(
    "is are was were be been being am has have had will would can could should shall may might "
    "must do does did not never"
)
_SUBJECTS = _wordset("i he she we they you it")
_CONJUNCTIONS = _wordset(
    "and but or nor so yet because while although though if when whereas since unless until "
    "whether as once where who that"
)
_SPEECH_VERBS = _wordset(
    "said says asked asks replied whispered shouted muttered answered called told cried added "
    "explained wrote"
)
_PY_KEYWORDS = _wordset(
    "def class import from return if elif while and or not in for with as lambda del global yield "
    "raise assert await is else"
)
# Endings that usually close an English word: a cut right after them is probably at a word end.
_WORD_ENDINGS = ("ed", "ing", "tion", "sion", "ment", "ness", "ly", "ful", "ous", "ity", "es")
_ABBREVIATIONS = _wordset("mr mrs ms dr st vs etc jr sr prof inc fig no mt gen col lt sgt")
_FUNCTION_WORDS = (
    _DETERMINERS | _PREPOSITIONS | _AUXILIARIES | _SUBJECTS | _CONJUNCTIONS | {"to", "the"}
)
_STOPWORDS = _STOPWORDS | _FUNCTION_WORDS

_QUOTE_NAMES = {'"': "double quote", "“": "double quote", "'": "single quote", "‘": "single quote"}
_BRACKET_NAMES = {"(": "parenthesis", "[": "square bracket", "{": "curly brace"}
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_OPENERS = {")": "(", "]": "[", "}": "{"}

# ---------------------------------------------------------------------------------------------
# Regexes (compiled once)
# ---------------------------------------------------------------------------------------------

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
_RE_LIST_LINE = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t]+\S", _M)
_RE_KV_LINE = re.compile(r"^[ \t]*[\"']?[A-Za-z][^:=\n]{0,30}[:=][^\n]{0,24}$", _M)
_RE_JSON_KEY = re.compile(r"\"[\w .-]{1,30}\"\s*:")
_RE_JSON_KEY_NAME = re.compile(r"\"([\w .-]{1,30})\"\s*:")

_SPEAKER_CORE = r"(?:\[?\d{1,2}:\d{2}(?::\d{2})?\]?[ \t]*)?(?:<([\w .-]{1,20})>|([A-Za-z][\w.'-]{0,20}(?: [A-Z][\w.'-]{0,20})?)[ \t]*:)"
_RE_SPEAKER_LINE = re.compile(r"^[ \t]*" + _SPEAKER_CORE + r"[ \t]+(\S[^\n]*)", _M)
_RE_SPEAKER_TAG = re.compile(r"^[ \t]*" + _SPEAKER_CORE, _M)
_CHAT_ROLES = _wordset(
    "user assistant human ai bot system q a interviewer host guest customer agent"
)
_RE_QUOTE_LINE = re.compile(r"^[ \t]*[\"\u201c\u2014][^\n]{0,120}$", _M)

_RE_SPEECH_ATTR = re.compile(
    r"[,.?!][\"\u201d]\s+(?:he|she|I|they|[A-Z][a-z]+) (?:\w+ )?[a-z]+ed\b|[,.?!][\"\u201d]\s+\w+ said\b"
)
# Punctuation and digits to spaces: `text.translate(_WORD_SPLIT).split()` is a fast word tokenizer.
_WORD_SPLIT = str.maketrans(
    dict.fromkeys(
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~0123456789"
        "\u201c\u201d\u2018\u2019\u2014\u2013\u2026\u00ab\u00bb\u201e\u201a\u2022\u00b7"
        "\u3001\u3002\uff0c\uff01\uff1f\uff1a\uff1b\uff08\uff09\u300c\u300d\u300e\u300f\u3010\u3011",
        " ",
    )
)
_RE_CAPWORD = re.compile(r"\b[A-Z][a-z]{2,}\b")
_RE_DIGITS = re.compile(r"[0-9]+")
_RE_YEAR = re.compile(r"(?:19|20)\d\d\b")
_RE_DOT_IDENT = re.compile(r"\.[a-z_]")

# Word lexicons for the prose genres, counted in one pass over the window's word counts.
_PAST, _PRON3, _PRON1, _NNOUN, _PRESENT, _NEWS, _TECH, _RECIPE = range(8)
_LEXICONS = {
    _PAST: "was were had said asked went came looked saw felt knew thought took told turned made got "
    "began stood sat left heard walked smiled whispered replied laughed seemed found ran kept held "
    "fell gave opened closed pulled pushed stared nodded shook",
    _PRON3: "he she him her his they them their himself herself",
    _PRON1: "i me my myself we us our",
    _NNOUN: "eyes face hand hands door room voice head night smile heart window shoulder breath "
    "silence stairs hair fingers floor kitchen forest village",
    _PRESENT: "is are has have can may include includes including however also known typically "
    "generally often according between because which such example",
    _NEWS: "according percent official officials government company president minister reported "
    "announced million billion spokesperson spokesman agency statement researchers study "
    "january february april june july august september october november december monday "
    "tuesday wednesday thursday friday saturday",
    _TECH: "function functions method methods parameter parameters argument arguments return returns "
    "default option options flag configure configuration config install installed installation "
    "command file files module instance string integer boolean api endpoint request response "
    "server client database variable environment package library attribute property callback "
    "specify specified optional required object error exception query token output input "
    "directory path version enable disable usage syntax example support supports cli json yaml "
    "http url deprecated keyword timeout cache thread process compile runtime dependency "
    "dependencies",
    _RECIPE: "cup cups tbsp tsp tablespoon tablespoons teaspoon teaspoons gram grams oz ounce ounces ml "
    "pinch chopped minced diced sliced ingredients preheat bake stir whisk simmer",
}
_LEX: dict[str, tuple[int, ...]] = {}
for _cat, _words in _LEXICONS.items():
    for _w in _words.split():
        _LEX[_w] = (*_LEX.get(_w, ()), _cat)
_RE_FENCE = re.compile(r"^[ \t]*```", _M)
_RE_UNDERSCORES = re.compile(r"_{2,}")
_RE_SPACES = re.compile(r"\s+")

_RE_IDENT_TOKEN = re.compile(r"-{0,2}[A-Za-z_][\w.-]*")
_RE_SAFE_START = re.compile(r"^[ \t]*(?:def|class|import|from|@)\b", _M)
_RE_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)")
_RE_CLASS = re.compile(r"^[ \t]*class[ \t]+(\w+)")
_RE_BLOCK = re.compile(r"^[ \t]*(if|elif|else|for|while|with|try|except|finally)\b")
# Whole comments and closed strings are single tokens; then lone (unclosed) quotes and brackets.
_CODE_TOK = re.compile(
    r"#[^\n]*|\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|\"\"\"|'''"
    r"|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|[\"'()\[\]{}]"
)
_RE_TAIL_NAME = re.compile(r"[\w.]+$")
_RE_TAIL_WORD = re.compile(r"[^\W\d_][\w'-]*$")
_RE_TAIL_KEY = re.compile(r"\"([\w .-]{1,30})\"\s*:\s*$")
_RE_IMPORT_LINE = re.compile(r"^(?:import|from) ", _M)
_RE_NUMBERED_LINE = re.compile(r"^\s*\d+[.)]", _M)
_RE_NAME_BEFORE = re.compile(r"([A-Za-z_][\w.]*)\s*$")

_RE_SQ_OPEN = re.compile(r"(?:^|(?<=[\s(\[{\u2014-]))'(?=\w)")
_RE_SQ_CLOSE = re.compile(r"(?<=[\w.,!?])'(?=[\s.,;:!?)\]}\u2014-]|$)")
_RE_CURLY_CLOSE = re.compile(r"\u2019(?![A-Za-z])")
_RE_PROSE_BRACKET = re.compile(r"[()\[\]{}]")
_RE_LIST_MARK = re.compile(r"^[ \t]*([-*+\u2022]|\d{1,3}[.)])(?:[ \t]+|$)")
_RE_TABLE_SEP = re.compile(r"^[ \t|:-]+$")

# Markup, quotes, backslashes, control characters and everything `str.splitlines` breaks on.
_DROP = str.maketrans(
    {c: " " for c in '*#<>`"\u201c\u201d\\\x85\u2028\u2029\u200b\u200c\u200d\u200e\u200f\ufeff'}
    | {chr(i): " " for i in [*range(32), 127]}
)

# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

_GENRE_PHRASES = {
    "code": (
        "Python source code",
        "Source code of a Python module",
        "A Python program",
        "Program text written in Python",
    ),
    "dialogue": (
        "A dialogue transcript",
        "A chat or conversation transcript",
        "Conversational turns between speakers",
        "A dialogue of alternating speaker turns",
    ),
    "structured": (
        "Structured data with short delimited lines",
        "A list or table of structured entries",
        "Tabular or list-like structured records",
        "Short structured entries rather than prose",
    ),
    "technical": (
        "Technical documentation",
        "Software documentation in an instructional register",
        "Technical reference prose",
        "A technical manual or API documentation",
    ),
    "narrative": (
        "Narrative fiction in prose",
        "A story told in narrative prose",
        "Fictional narrative prose",
        "Storytelling prose with characters and events",
    ),
    "expository": (
        "Expository prose",
        "Informational, article-style prose",
        "Explanatory non-fiction prose",
        "Factual expository writing",
    ),
}
_SUBGENRE_PHRASES = {
    "news": ("A news-like report", "News-style expository prose", "A factual news article"),
    "past": ("Past-tense narrative prose", "A story narrated in the past tense"),
    "first": ("First-person narrative prose", "A story told by an I narrator"),
    "table": ("A markdown-style table", "A table with pipe-separated cells"),
    "csv": ("Comma-separated rows of data", "A CSV-style data table"),
    "json": ("JSON-like structured records", "A JSON-style object listing"),
    "recipe": ("A recipe with ingredients and steps", "A cooking recipe"),
    "list": ("A list of short items", "An itemised list"),
    "kv": ("Records of labelled fields", "Key-value records, one field per line"),
    "chat": ("A chat transcript with role-tagged turns", "A question and answer style exchange"),
    "install": ("Installation and setup instructions", "A technical how-to guide"),
    "api": ("API reference documentation", "Documentation of a programming interface"),
}
_TOPIC_TEMPLATES = (
    "{g} about {t}",
    "{g}; the main topics are {t}",
    "{g}, with salient words {t}",
    "{g} concerning {t}",
    "{g}; recent content words include {t}",
    "{g}, mentioning {t}",
)
_NO_TOPIC_TEMPLATES = (
    "{g}; the topic is not yet clear",
    "{g} with little topical content so far",
    "{g}, topic still unknown",
)
_SCRIPT_NOTE = " in {s} script"


class _Picker:
    """Deterministic template choice from a hash of (seed, prefix)."""

    __slots__ = ("_d", "_i")

    def __init__(self, text: str, key: bytes) -> None:
        # The tail and the length identify a prefix well enough, and cost the same for any length.
        data = f"{len(text)}:{text[-4096:]}".encode("utf-8", "surrogatepass")
        self._d = hashlib.blake2b(data, digest_size=32, key=key).digest()
        self._i = 0

    def pick(self, options: Sequence[_T]) -> _T:
        i = self._i
        self._i += 1
        j = (i * 2) % 32
        v = (self._d[j] << 8 | self._d[j + 1]) + i // 16
        return options[v % len(options)]

    def fit(self, options: Sequence[str]) -> str:
        """Like `pick`, but falls back to the shortest option when the pick is over the word limit."""
        choice = self.pick(options)
        if len(choice.split()) <= MAX_WORDS:
            return choice
        return min(options, key=lambda o: len(o.split()))

    def flip(self, percent: int) -> bool:
        i = self._i
        self._i += 1
        return self._d[(i * 3) % 32] * 100 < percent * 256


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _q(s: str, maxlen: int = 24, keep_end: bool = True) -> str:
    """A snippet safe to quote inside a feature: one line, no markup, short."""
    if not s.isascii():
        s = s.encode("utf-8", "ignore").decode("utf-8")  # drops lone surrogates
    s = _RE_UNDERSCORES.sub("_", s.translate(_DROP))
    s = _RE_SPACES.sub(" ", s).strip()
    if len(s) > maxlen:
        s = (
            ("..." + s[-(maxlen - 3) :].lstrip())
            if keep_end
            else (s[: maxlen - 3].rstrip() + "...")
        )
    return s


def _clip(feature: str) -> str:
    """Enforce the word and length limits; mend empty or unbalanced quotes."""
    feature = feature.replace('""', "the preceding symbols")
    words = feature.split()
    if len(words) > MAX_WORDS:
        feature = " ".join(words[:MAX_WORDS]).rstrip(",;:")
    if len(feature) > MAX_FEATURE_CHARS:
        feature = feature[: MAX_FEATURE_CHARS - 4].rstrip() + "..."
    if feature.count('"') % 2:
        feature += '"'
    return feature


def _join_words(words: Sequence[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _last_words(s: str, n: int = 3, maxlen: int = 28) -> str:
    """The last 1-n whitespace-separated tokens of `s`, sanitised."""
    toks = s[-120:].split()[-n:]
    out = _q(" ".join(toks), maxlen)
    while len(toks) > 1 and (len(out) > maxlen - 4 or out.startswith("...")):
        toks = toks[1:]
        out = _q(" ".join(toks), maxlen)
    return out


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != "I " else s


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
    counts: dict[str, int] = {}
    for c in non_ascii:
        o = ord(c)
        if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF:
            k = "Chinese"
        elif 0x3040 <= o <= 0x30FF:
            k = "Japanese kana"
        elif 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF:
            k = "Korean Hangul"
        elif 0x0400 <= o <= 0x04FF:
            k = "Cyrillic"
        elif 0x0370 <= o <= 0x03FF:
            k = "Greek"
        elif 0x0600 <= o <= 0x06FF:
            k = "Arabic"
        elif 0x0590 <= o <= 0x05FF:
            k = "Hebrew"
        elif 0x0900 <= o <= 0x097F:
            k = "Devanagari"
        else:
            k = "non-Latin"
        counts[k] = counts.get(k, 0) + 1
    if counts.get("Japanese kana", 0) * 10 >= len(non_ascii):
        return "Japanese"  # kanji and kana mixed
    return max(counts, key=counts.__getitem__)


# ---------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------


class _Doc:
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
        win = text[-_WINDOW:]
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
    for m in _RE_SPEAKER_LINE.finditer(win):
        name = (m.group(1) or m.group(2) or "").strip()
        if not name:
            continue
        rest = m.group(3).rstrip()
        if m.group(1) or rest.count(" ") >= 2 or rest[-1:] in ".?!," or name.lower() in _CHAT_ROLES:
            full.add(name)
        items.append(name)
    return [name for name in items if name in full]


def _classify(doc: _Doc) -> tuple[str, str | None, dict[str, float]]:
    g = doc.win[-_GENRE_WINDOW:]
    if not g.strip():
        return "expository", None, {}
    if g.count("\n") > 24:  # line-oriented text: fewer characters already hold enough lines
        g = g[-_GENRE_WINDOW_LINES:]
    lines = [ln for ln in g.split("\n") if ln.strip()]
    n = len(lines)
    nchar = max(1, len(g))
    low = g.lower()
    words = low.translate(_WORD_SPLIT).split()
    counts = Counter(words)
    doc.words, doc.wcounts = words, counts
    nw = max(1, len(words))
    short = sum(1 for ln in lines if len(ln) < 45) / n
    long_lines = sum(1 for ln in lines if len(ln) > 80) / n

    # Lexicon rates: only the distinct words that are in some lexicon are visited.
    cat = [0] * 8
    for w in counts.keys() & _LEX.keys():
        c = counts[w]
        for k in _LEX[w]:
            cat[k] += c
    cat[_PAST] += low.count("ed ") + low.count("ed.") + low.count("ed,")

    has_colon = ":" in g

    def count(rx: re.Pattern[str]) -> int:
        """Lines matching a line-anchored regex; per line when there are few (cheaper)."""
        if n <= 8:
            return sum(1 for ln in lines if rx.match(ln))
        return len(rx.findall(g))

    has_quote = '"' in g or "\u201c" in g or "\u2014" in g

    # code
    strong = count(_RE_CODE_STRONG)
    colon_end = sum(1 for ln in lines if ln.rstrip()[-1:] == ":") if has_colon else 0
    weak = count(_RE_CODE_WEAK) if colon_end else 0
    indent = count(_RE_INDENT) if "\n " in g or "\n\t" in g or g[:1] in " \t" else 0
    assign = count(_RE_ASSIGN) if "=" in g else 0
    selfdot = g.count("self.")
    ops = sum(g.count(o) for o in _CODE_OPS) - selfdot
    sym = sum(g.count(c) for c in "()[]{}=_") / nchar
    code = (
        3 * strong + 2 * weak + 1.5 * selfdot + colon_end + 0.6 * indent + assign + 0.5 * ops
    ) / n
    code += 6 * sym + min(1.0, 0.5 * strong)

    # structured
    pipes = count(_RE_PIPE_LINE) if "|" in g else 0
    lists = count(_RE_LIST_LINE)
    kv = count(_RE_KV_LINE) if has_colon or "=" in g else 0
    jkeys = len(_RE_JSON_KEY.findall(g)) if '":' in g or '" :' in g else 0
    nums = len(_RE_DIGITS.findall(g)) if any(d in g for d in "0123456789") else 0
    commas = g.count(",") + g.count("\t") + g.count(";")
    recipe = cat[_RECIPE]
    comma_ratio = min(1.0, commas / nw)
    structured = (2 * pipes + 1.3 * lists + 0.8 * kv + 1.5 * jkeys) / n
    structured += 2.5 * max(0.0, comma_ratio - 0.15) + 1.5 * min(1.0, nums / nw) + 0.6 * short
    structured += min(1.0, 4 * recipe / nw) - 0.8 * long_lines - 1.2 * min(1, strong)

    # dialogue
    # Indented lines are code or nested records, never speaker turns.
    tags = _speaker_tags(g) if (has_colon or ">" in g) and indent * 2 < n else []
    roles = sum(1 for t in tags if t.lower() in _CHAT_ROLES)
    qlines = count(_RE_QUOTE_LINE) if has_quote else 0
    distinct = len(set(tags))
    attr = len(_RE_SPEECH_ATTR.findall(g)) if has_quote else 0
    dialogue = (2.2 * len(tags) + 1.5 * roles + 1.3 * max(0, qlines - 2 * attr)) / n
    if distinct >= 2:
        dialogue += 0.5
    elif distinct == 1 and len(tags) < 3:
        dialogue *= 0.5
    doc.speakers = tags

    # prose genres
    past = cat[_PAST] / nw
    pron3 = cat[_PRON3] / nw
    pron1 = cat[_PRON1] / nw
    nnoun = cat[_NNOUN] / nw
    present = cat[_PRESENT] / nw
    years = len(_RE_YEAR.findall(g)) if "19" in g or "20" in g else 0
    news = (cat[_NEWS] + years + g.count("%")) / nw
    tech = cat[_TECH] / nw
    ident = (g.count("_") + g.count("()") + g.count(" --") + len(_RE_DOT_IDENT.findall(g))) / nw
    narrative = 5 * past + 4 * pron3 + 2 * pron1 + 6 * nnoun + 0.3 * min(attr, 3)
    expository = 0.25 + 3 * present + 5 * news + min(0.3, 0.6 * nums / nw)
    technical = 5 * tech + 8 * ident + 0.3 * doc.fence_open

    # Prose-heavy text with code lines, fences or inline code is documentation, not a code file.
    ticks = g.count("`")
    technical += min(1.0, 5 * ticks / nw)
    if code > 0.8:
        prose_lines = sum(
            1
            for ln in lines
            if len(ln) > 50 and ln.count(" ") >= 7 and ln[:1] not in " \t#" and " the " in ln
        )
        if prose_lines / n > 0.2 or (ticks >= 3 and prose_lines):
            technical += 0.4 * code
            code *= 0.5
    scores = {
        "code": code,
        "structured": structured,
        "dialogue": dialogue,
        "narrative": narrative,
        "expository": expository,
        "technical": technical,
    }
    line_genre = max(("code", "structured", "dialogue"), key=scores.__getitem__)
    if scores[line_genre] >= 1.0:
        genre = line_genre
    else:
        genre = max(("narrative", "expository", "technical"), key=scores.__getitem__)

    sub = None
    if genre == "structured":
        if pipes >= 2:
            sub = "table"
        elif jkeys >= 2:
            sub = "json"
        elif recipe >= 3:
            sub = "recipe"
        elif comma_ratio > 0.4 and n >= 2:
            sub = "csv"
        elif lists >= 2:
            sub = "list"
        elif kv >= 2:
            sub = "kv"
    elif genre == "dialogue" and roles >= 2:
        sub = "chat"
    elif genre == "narrative":
        if pron1 > pron3:
            sub = "first"
        elif past > present:
            sub = "past"
    elif genre == "expository" and news * 5 > 3 * present and news > 0.02:
        sub = "news"
    elif genre == "technical":
        low = g.lower()
        if "install" in low or "pip " in low or "$ " in g:
            sub = "install"
        elif ident > 0.03 and ("param" in low or "return" in low or "argument" in low):
            sub = "api"
    return genre, sub, scores


def _topics(doc: _Doc, exclude: set[str]) -> list[str]:
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
            and w not in _STOPWORDS
            and w not in exclude
            and not (code_like and w in _CODE_STOP)
            and not (w == partial and doc.wcounts[w] == 1)
            and not (len(w) >= 5 and w.endswith(("ed", "ly")))  # verbs and adverbs, not topics
            and _PAST not in _LEX.get(w, ())
        ):
            found.append((c, len(w) >= 6, w))
    # Ties prefer longer words, then alphabetical order: never the order of a hash-seeded set.
    found.sort(key=lambda t: (-t[0], not t[1], t[2]))
    top = [w for _, _, w in found[:3]]
    if len(top) == 3 and found[2][0] * 3 < found[0][0]:
        top = top[:2]
    # Names keep their capital: a word seen only capitalised in the window.
    seg = doc.win[-_GENRE_WINDOW:]
    top = [w.capitalize() if w not in seg and w.capitalize() in seg else w for w in top]
    return [_q(w, 18, keep_end=False) for w in top]


# ---------------------------------------------------------------------------------------------
# Feature 1: genre and topic
# ---------------------------------------------------------------------------------------------


def _feature_genre(doc: _Doc, pk: _Picker) -> str:
    if doc.sub and pk.flip(60):
        g = pk.pick(_SUBGENRE_PHRASES[doc.sub])
    else:
        g = pk.pick(_GENRE_PHRASES[doc.genre])
    if doc.script:
        g += _SCRIPT_NOTE.format(s=doc.script)
    exclude = {s.lower() for s in doc.speakers} if doc.genre == "dialogue" else set()
    topics = _topics(doc, exclude)
    if topics:
        return pk.pick(_TOPIC_TEMPLATES).format(g=g, t=_join_words(topics))
    return pk.pick(_NO_TOPIC_TEMPLATES).format(g=g)


# ---------------------------------------------------------------------------------------------
# Feature 2: structure / context
# ---------------------------------------------------------------------------------------------


def _indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _code_context(doc: _Doc, pk: _Picker) -> str | None:
    lines = doc.lines[-80:]
    cur = lines[-1]
    if cur.strip():
        target = _indent_of(cur)
        prev = lines[:-1]
    else:
        # A blank current line: indentation typed so far, or that of the last statement.
        prev = lines[:-1]
        last = next((ln for ln in reversed(prev) if ln.strip()), "")
        target = len(cur) if cur else _indent_of(last) + (4 if last.rstrip().endswith(":") else 0)
    func = cls = block = None
    for ln in reversed(prev):
        if not ln.strip():
            continue
        ind = _indent_of(ln)
        if ind >= target:
            continue
        m = _RE_DEF.match(ln)
        if m:
            if func is None and cls is None:
                func = m.group(1)
        else:
            m = _RE_CLASS.match(ln)
            if m:
                cls = m.group(1)
                break
            m = _RE_BLOCK.match(ln)
            if m and block is None and func is None:
                block = m.group(1)
        target = ind
        if ind == 0:
            break
    func = _q(func, 24, keep_end=False) if func else None
    cls = _q(cls, 24, keep_end=False) if cls else None
    where = None
    if func and cls:
        where = pk.pick(
            (
                f"Inside the body of method {func} of class {cls}",
                f"Within the class {cls}, in the method {func}",
                f"In a class method body: {cls}.{func}",
            )
        )
    elif func:
        where = pk.pick(
            (
                f"Inside the body of the function {func}",
                f"Within the function {func}, defined at module level",
                f"In the body of {func}, a top-level function",
            )
        )
    elif cls:
        where = pk.pick(
            (
                f"Inside the body of class {cls}, at method level",
                f"Within the class {cls}, between method definitions",
            )
        )
    art = "an" if block and block[0] in "aeiou" else "a"
    if block and where:
        where += f", inside {art} {block} block"
    elif block:
        where = pk.pick((f"Inside {art} {block} block", f"Within {art} {block} branch of the code"))
    if where is None:
        recent = "\n".join(lines[-12:])
        if _RE_IMPORT_LINE.search(recent):
            where = pk.pick(
                ("At module top level, among the imports", "In the module's import section")
            )
        else:
            where = pk.pick(
                ("At module top level, outside any function", "Module-level code, not inside a def")
            )
    return where


def _dialogue_context(doc: _Doc, pk: _Picker) -> str | None:
    tags = doc.speakers
    if not tags:
        if len(_RE_QUOTE_LINE.findall(doc.win)) >= 2:
            return pk.pick(
                (
                    "Quoted turns between characters with little narration",
                    "Alternating quoted lines of speech",
                )
            )
        return None
    order: list[str] = []
    for t in tags:
        if t not in order:
            order.append(t)
    names = [_q(t, 16, keep_end=False) for t in order[-3:]]
    m = _RE_SPEAKER_TAG.match(doc.cur)
    speaking = (m.group(1) or m.group(2)).strip() if m else None
    who = _join_words(names)
    kind = (
        "two speakers"
        if len(order) == 2
        else f"{len(order)} speakers"
        if len(order) > 2
        else "one speaker"
    )
    if speaking:
        s = _q(speaking, 16, keep_end=False)
        return pk.pick(
            (
                f"A conversation between {who}; {s} is speaking now",
                f"{s} holds the current turn in a conversation with {kind}",
                f"Turns alternate between {who}, and it is {s}'s turn",
            )
        )
    last = _q(tags[-1], 16, keep_end=False)
    return pk.pick(
        (
            f"A conversation between {who}; {last} spoke last",
            f"Turns alternate between {who}; the last turn was {last}'s",
        )
    )


def _header_cells(line: str, sep: str) -> list[str]:
    cells = [c.strip() for c in line.strip().strip("|").split(sep)]
    return [_q(c, 14, keep_end=False) for c in cells]


def _table_header(doc: _Doc) -> list[str]:
    for i, ln in enumerate(doc.lines):
        if ln.count("|") >= 2 and not _RE_TABLE_SEP.match(ln):
            nxt = doc.lines[i + 1] if i + 1 < len(doc.lines) else ""
            if _RE_TABLE_SEP.match(nxt) and "-" in nxt:
                return _header_cells(ln, "|")
    for ln in doc.lines:
        if ln.count("|") >= 2 and not _RE_TABLE_SEP.match(ln):
            return _header_cells(ln, "|")
    return []


def _csv_header(doc: _Doc) -> tuple[list[str], str]:
    first = doc.text[:400].split("\n", 1)[0]
    for sep in (",", "\t", ";"):
        if first.count(sep) >= 1 and not _RE_DIGITS.search(first):
            return _header_cells(first, sep), sep
    return [], ","


def _json_keys(doc: _Doc) -> list[str]:
    keys: list[str] = []
    for m in _RE_JSON_KEY.finditer(doc.win[-800:]):
        k = m.group().split('"')[1]
        if k not in keys:
            keys.append(k)
    return [_q(k, 14, keep_end=False) for k in keys[:4]]


def _next_in_cycle(keys: list[str]) -> str | None:
    """In repeating records, the key that followed the last key the previous time it appeared."""
    if not keys:
        return None
    last = keys[-1]
    for i in range(len(keys) - 2, -1, -1):
        if keys[i] == last:
            return keys[i + 1]
    return None


def _kv_keys(doc: _Doc) -> list[str]:
    keys: list[str] = []
    for ln in doc.lines[-30:]:
        if ":" in ln and _RE_KV_LINE.match(ln):
            keys.append(ln.split(":", 1)[0].strip().strip("\"'"))
    return keys


def _cols_phrase(cols: list[str]) -> str:
    cols = [c for c in cols if c][:4]
    return ", ".join(cols)


def _structured_context(doc: _Doc, pk: _Picker) -> str | None:
    sub = doc.sub
    if sub == "table":
        cols = _cols_phrase(_table_header(doc))
        if cols:
            return pk.pick(
                (
                    f"A table with columns {cols}",
                    f"Table rows under the header {cols}",
                    f"Each row fills the columns {cols}",
                )
            )
    elif sub == "csv":
        cols, _ = _csv_header(doc)
        cols_s = _cols_phrase(cols)
        if cols_s:
            return pk.pick(
                (
                    f"CSV records with the fields {cols_s}",
                    f"Rows of values for the columns {cols_s}",
                )
            )
        return pk.pick(("Comma-separated records, one per line", "One delimited record per line"))
    elif sub == "json":
        keys = _cols_phrase(_json_keys(doc))
        if keys:
            return pk.pick(
                (f"Records with the keys {keys}", f"JSON-like objects repeating the keys {keys}")
            )
    elif sub == "recipe":
        if _RE_LIST_MARK.match(doc.cur) or len(_RE_LIST_LINE.findall(doc.win[-300:])) >= 2:
            if _RE_NUMBERED_LINE.search(doc.win[-300:]):
                return pk.pick(
                    ("A recipe's numbered method steps", "The numbered steps of a recipe")
                )
            return pk.pick(
                ("A recipe's ingredient list", "Ingredients listed with quantities and units")
            )
        return pk.pick(
            ("A recipe: ingredients with quantities, then steps", "Cooking instructions")
        )
    elif sub == "list":
        items = len(_RE_LIST_LINE.findall(doc.win[-600:]))
        return pk.pick(
            (
                f"A list of items, about {items} so far in view",
                "A list, one item per line with a marker",
                "An itemised list of short entries",
            )
        )
    elif sub == "kv":
        keys: list[str] = []
        for k in _kv_keys(doc):
            if k not in keys:
                keys.append(k)
        cols = _cols_phrase([_q(k, 14, keep_end=False) for k in keys])
        if cols:
            return pk.pick(
                (f"Records of labelled fields such as {cols}", f"Each record lists {cols}")
            )
    return None


def _narrative_context(doc: _Doc, pk: _Picker) -> str | None:
    counts = Counter(
        w for w in _RE_CAPWORD.findall(doc.win[-_GENRE_WINDOW:]) if w.lower() not in _STOPWORDS
    )
    name = max(counts, key=lambda w: (counts[w], w)) if counts else None
    if name and counts[name] < 2:
        name = None
    if doc.sub == "first":
        opts = ["First-person narration by an I narrator", "Told in the first person by a narrator"]
        if name:
            opts.append(f"First-person narration; {_q(name, 16)} is a character nearby")
        return pk.pick(opts)
    if name:
        n = _q(name, 16)
        return pk.pick(
            (
                f"Third-person narration following {n}",
                f"The story follows {n}, told in the third person",
                f"{n} is the focal character of the scene",
            )
        )
    if pk.flip(50):
        return pk.pick(
            ("Third-person narration of a scene", "A scene narrated from outside the characters")
        )
    return None


def _expository_context(doc: _Doc, pk: _Picker) -> str | None:
    if doc.sub == "news":
        return pk.pick(
            (
                "News-style reporting with dates, figures and attributed sources",
                "Reporting register: facts, numbers and who said them",
                "A report that attributes claims to officials or studies",
            )
        )
    if pk.flip(50):
        return pk.pick(
            (
                "An explanatory passage in a neutral, present-tense register",
                "Informative prose defining and describing its subject",
                "Neutral expository register, building an explanation",
            )
        )
    return None


def _technical_context(doc: _Doc, pk: _Picker) -> str | None:
    if doc.fence_open:
        return pk.pick(
            (
                "Inside a fenced code example within the documentation",
                "A code sample embedded in documentation is open",
            )
        )
    ident = None
    for tok in reversed(doc.win[-300:].split()):
        m = _RE_IDENT_TOKEN.search(tok)
        tok = m.group().rstrip(".-") if m else ""
        if len(tok) > 2 and ("_" in tok or "." in tok or tok[:2] == "--"):
            ident = _q(tok.strip("-"), 24, keep_end=False)
            break
    if doc.sub == "install":
        return pk.pick(
            (
                "Setup instructions mixing shell commands and explanation",
                "Step-by-step installation or configuration guidance",
            )
        )
    if ident:
        return pk.pick(
            (
                f"Documentation around the identifier {ident}",
                f"Explains how {ident} is used and configured",
                f"Reference text describing {ident} and its behaviour",
            )
        )
    return None


_CONTEXT = {
    "code": _code_context,
    "dialogue": _dialogue_context,
    "structured": _structured_context,
    "narrative": _narrative_context,
    "expository": _expository_context,
    "technical": _technical_context,
}


# ---------------------------------------------------------------------------------------------
# Feature 3: the very end
# ---------------------------------------------------------------------------------------------


def _scan_code(src: str) -> tuple[str | None, int, bool, list[tuple[str, int]]]:
    """String/comment/bracket state at the end of Python source `src`.

    Returns (open string delimiter or None, its position, inside a comment, open brackets).
    Closed strings and comments are consumed whole by the token regex, so only brackets and
    unclosed delimiters reach the loop.
    """
    stack: list[tuple[str, int]] = []
    for m in _CODE_TOK.finditer(src):
        t = m.group()
        c = t[0]
        if c in "([{":
            stack.append((t, m.start()))
        elif c in ")]}":
            if stack and stack[-1][0] == _OPENERS[t]:
                stack.pop()
        elif c == "#":
            if m.end() == len(src):
                return None, -1, True, stack
        elif t == '"""' or t == "'''":
            return t, m.start(), False, stack  # an unclosed triple quote runs to the end
        elif len(t) == 1 and "\n" not in src[m.end() :]:
            return t, m.start(), False, stack  # a string opened on the last line
        # else: a closed string, or a quote left unclosed on an earlier line
    return None, -1, False, stack


def _code_end(doc: _Doc, pk: _Picker) -> str:
    win = doc.win
    if doc.fence_open:
        src = win[win.rfind("```") + 3 :]
        src = src[src.find("\n") + 1 :] if "\n" in src else ""
    else:
        # Start the scan at a def/class/import line when there is one: surely not inside a string.
        src = win[-_CODE_SCAN:]
        m = _RE_SAFE_START.search(src)
        if m:
            src = src[m.start() :]
        elif len(win) > _CODE_SCAN and "\n" in src[:-1]:
            src = src[src.find("\n") + 1 :]
    if doc.cur.strip() in (">>>", "..."):
        cont = doc.cur.strip() == "..."
        return pk.pick(
            (
                "At a continuation prompt; the indented rest of the statement follows"
                if cont
                else "At a fresh interpreter prompt; a new Python statement or expression follows",
                "An interactive session prompt was just printed; the next input line comes next",
            )
        )
    in_str, str_start, comment, stack = _scan_code(src)
    stripped = src.rstrip(" \t")
    tail_words = _last_words(src)

    if in_str is not None:
        body = _q(src[str_start + len(in_str) :], 20)
        if len(in_str) == 3:
            return pk.pick(
                (
                    "Inside an unfinished triple-quoted string or docstring; its text continues until the closing triple quote",
                    f"Within an open docstring{' after ' + chr(34) + body + chr(34) if body else ''}; more text, then the closing triple quote",
                    "A triple-quoted string is still open, so prose continues rather than code",
                )
            )
        q = _QUOTE_NAMES[in_str]
        return pk.pick(
            (
                f"Inside an open string literal{' after ' + chr(34) + body + chr(34) if body else ''}; it must be closed with a {q}",
                f"A {q}-delimited string is unfinished; its characters continue, then the closing {q}",
                f"The cursor is in a string literal opened with a {q}; the string text continues",
            )
        )
    if comment:
        return pk.pick(
            (
                f'In a comment ending "{tail_words}"; comment text runs to the end of the line',
                f'A # comment is being written, last words "{tail_words}"; then a new code line',
            )
        )
    if stack:
        br, pos = stack[-1]
        name = _RE_NAME_BEFORE.search(src[max(0, pos - 40) : pos])
        what = _BRACKET_NAMES[br]
        close = _CLOSERS[br]
        inner = src[pos + 1 :].strip()
        state = "the first element" if not inner else "more elements or the closing " + close
        if (
            br == "("
            and name
            and name.group(1) not in ("if", "while", "return", "and", "or", "not", "in")
        ):
            fn = _q(name.group(1), 20)
            return pk.pick(
                (
                    f"Inside the open parenthesis of the call {fn}(; arguments continue until a closing parenthesis",
                    f"The argument list of {fn} is still open; next comes {state}",
                    f"An unclosed call to {fn}: the remaining arguments and the closing parenthesis must follow",
                )
            )
        return pk.pick(
            (
                f"An open {what} is unclosed; {state} must follow",
                f"Inside an unclosed {what} ending with {chr(34) + tail_words + chr(34) if tail_words else 'nothing yet'}; {state} comes next",
                f"The expression is inside an open {what}, so {state} follows",
            )
        )
    # Line and token level.
    if not src.strip():
        return pk.pick(
            (
                "At the start of the code; the first statement or import comes next",
                "Nothing typed yet in this code block; a first line of code follows",
            )
        )
    if src.endswith("\n") or (stripped.endswith("\n") and not doc.cur.strip()):
        lines = src.rstrip("\n \t").split("\n")
        last = lines[-1] if lines else ""
        indent = len(doc.cur) if doc.cur and not doc.cur.strip() else None
        if last.rstrip().endswith(":"):
            return pk.pick(
                (
                    "A block opener line just ended with a colon; an indented body statement must follow",
                    f'After "{_last_words(last)}" the new line must start an indented block body',
                    "New line after a colon-terminated header; the block's first indented statement comes next",
                )
            )
        if src.endswith("\n\n") or (indent == 0 and src.rstrip(" \t").endswith("\n\n")):
            return pk.pick(
                (
                    "A blank line separates blocks; a new definition or statement follows",
                    "After a blank line in the code, the next def, class or statement begins",
                )
            )
        lvl = indent if indent is not None else _indent_of(last)
        return pk.pick(
            (
                f"At the start of a new line indented {lvl} spaces; the next statement of the same block follows",
                f'The line "{_last_words(last)}" is complete; another statement at indentation {lvl} comes next',
                "A statement just ended; the next line continues the current block or dedents",
            )
        )
    last_char = stripped[-1]
    if last_char == ":":
        return pk.pick(
            (
                f'The line "{tail_words}" ends with a colon; a newline and an indented block follow',
                "A block header just ended with a colon, so a new indented line comes next",
            )
        )
    if last_char.isalnum() or last_char == "_":
        word = _RE_TAIL_NAME.search(stripped[-60:])
        w = _q(word.group() if word else stripped[-12:], 20)
        kw = w.split(".")[-1]
        if kw in _PY_KEYWORDS or src.endswith((" ", "\t")):
            if kw in ("def", "class"):
                return pk.pick(
                    (
                        f'After the keyword "{kw}", a new name must follow',
                        f'"{kw}" needs its name next, then the signature',
                    )
                )
            if kw in ("import", "from"):
                return pk.pick(
                    (
                        f'After "{kw}", a module name must follow',
                        f"The {kw} statement needs a module name next",
                    )
                )
            if kw == "return":
                return pk.pick(
                    (
                        'After "return", the returned expression follows',
                        "A return statement needs its value next",
                    )
                )
            if kw in ("if", "elif", "while", "and", "or", "not"):
                return pk.pick(
                    (
                        f'After "{kw}", a condition expression must follow',
                        f'The keyword "{kw}" needs a boolean expression next',
                    )
                )
            if kw == "in":
                return pk.pick(
                    (
                        'After "in", the iterable or container expression follows',
                        'A membership or loop "in" needs its iterable next',
                    )
                )
            if kw in (
                "for",
                "with",
                "as",
                "lambda",
                "del",
                "global",
                "yield",
                "raise",
                "assert",
                "await",
                "is",
                "else",
            ):
                return pk.pick(
                    (
                        f'After the keyword "{kw}", the rest of the {kw} clause follows',
                        f'The keyword "{kw}" needs its operand next',
                    )
                )
            return pk.pick(
                (
                    f'After "{tail_words}" and a space; an operator, keyword or expression continues',
                    f'The code continues after "{w}"; an operator or the rest of the statement follows',
                )
            )
        return pk.pick(
            (
                f'Mid-identifier at "{w}"; the name must be completed or followed by ( . = or an operator',
                f'The token "{w}" may be unfinished; the identifier completes, then punctuation follows',
                f'Ends right on the name "{w}"; completion of the name or a call, attribute or operator comes next',
            )
        )
    if last_char == ".":
        return pk.pick(
            (
                f'After the dot in "{tail_words}", an attribute or method name must follow',
                "A member access dot is open; the attribute name comes next",
            )
        )
    if last_char == "=" and not stripped.endswith(("==", "!=", "<=", ">=")):
        return pk.pick(
            (
                f'After the assignment "{tail_words}", the value expression must follow',
                "An assignment is waiting for its right-hand side value",
            )
        )
    if last_char == ",":
        return pk.pick(
            (
                f'After a comma in "{tail_words}", the next element or argument follows',
                "A comma-separated sequence continues with another item",
            )
        )
    if last_char in ")]}":
        return pk.pick(
            (
                f'Just closed a bracket in "{tail_words}"; a newline, operator or method call follows',
                "A bracketed expression just closed; the statement ends or continues with an operator",
            )
        )
    return pk.pick(
        (
            f'The code ends with "{tail_words}"; an operand or the rest of the expression must follow',
            f'Mid-expression after "{tail_words}"; the statement continues',
        )
    )


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
        elif stack and stack[-1][0] == _OPENERS[c]:
            stack.pop()
    if stack:
        opens.append(stack[-1])
    return max(opens, key=lambda o: o[1]) if opens else None


def _word_class_follow(word: str, pk: _Picker) -> str:
    w = word.lower().strip(".,;:'\"")
    if w in _DETERMINERS:
        return pk.pick(
            (
                "a noun or adjective must follow",
                "a noun phrase has to come next",
                "the noun it introduces follows",
            )
        )
    if w == "to":
        return pk.pick(
            (
                "an infinitive verb or a destination follows",
                "a verb or noun phrase completes the to-phrase",
            )
        )
    if w in _PREPOSITIONS:
        return pk.pick(
            ("the preposition needs its object, a noun phrase", "a noun phrase object must follow")
        )
    if w in _AUXILIARIES:
        return pk.pick(("a verb, participle or adjective follows", "the verb phrase continues"))
    if w in _SUBJECTS:
        return pk.pick(("a verb must follow the subject", "the subject's verb comes next"))
    if w in _CONJUNCTIONS:
        return pk.pick(
            ("a new clause or coordinated phrase follows", "the connected clause comes next")
        )
    if w in _SPEECH_VERBS:
        return pk.pick(
            ("the speaker, a quotation or reported speech follows", "what was said comes next")
        )
    if w.endswith("ly") and len(w) > 4:
        return pk.pick(
            (
                "an adverb, so a verb or adjective likely follows",
                "the modified verb or adjective comes next",
            )
        )
    return pk.pick(
        (
            "the sentence continues with its next word",
            "the clause is unfinished and continues",
            "the phrase goes on with more words",
        )
    )


def _prose_core(text: str, pk: _Picker, genre: str) -> str:
    """End-state clause for prose-like text (no open quote/bracket handling)."""
    stripped = text.rstrip()
    trailing = text[len(stripped) :]
    if "\n" in trailing:
        prev_line = stripped.rsplit("\n", 1)[-1].strip()
        lw = _last_words(prev_line)
        if trailing.count("\n") >= 2:
            return pk.pick(
                (
                    f'A paragraph just ended after "{lw}"; a new paragraph begins',
                    "The text is at a paragraph break; the next paragraph starts fresh",
                    f'Blank line after "{lw}"; a new paragraph, heading or speaker line follows',
                )
            )
        if prev_line and len(prev_line) < 60 and prev_line[-1:] not in '.!?,;"”':
            return pk.pick(
                (
                    f'After a short heading-like line "{lw}"; its body text starts on the next line',
                    f'A line break follows the short line "{lw}"; content under it comes next',
                )
            )
        return pk.pick(
            (
                f'A line just ended after "{lw}"; the next line continues the text',
                f'Line break after "{lw}"; a new line or sentence starts',
            )
        )
    if not stripped:
        return "Nothing written yet; the first words of the document come next"
    lw = _last_words(stripped)
    tail_toks = stripped[-80:].split()
    last_tok = tail_toks[-1] if tail_toks else stripped[-20:]
    lt = _q(last_tok, 18)
    c = stripped[-1]
    space = bool(trailing)

    if c in "\"\u201d'\u2019" and len(stripped) > 1 and stripped[-2] in ",.?!":
        inner = stripped[-2]
        if inner == ",":
            return pk.pick(
                (
                    f'A quotation just closed with a comma after "{lw}"; a speech tag like she said follows',
                    "Quoted speech paused with a comma; the attribution or the rest of the sentence follows",
                )
            )
        if genre == "narrative":
            return pk.pick(
                (
                    f'A line of dialogue just closed after "{lw}"; an attribution or a new paragraph follows',
                    "Quoted speech ended; narration, a speech tag or another speaker's line comes next",
                )
            )
        return pk.pick(
            (
                f'A quotation ended after "{lw}"; a new sentence follows',
                "A closed quotation ends the sentence; the next sentence starts",
            )
        )
    if c in ".!?" or (c in '"\u201d)' and stripped[-2:-1] in (".", "!", "?")):
        base = last_tok.rstrip('.!?"\u201d)').lower()
        if c == "." and base in _ABBREVIATIONS:
            return pk.pick(
                (
                    f'Ends on the abbreviation "{lt}"; the sentence continues, usually with a name',
                    f'"{lt}" is an abbreviation, not a sentence end; the next word follows',
                )
            )
        if (
            c == "."
            and last_tok[:-1].isdigit()
            and len(last_tok) <= 4
            and (stripped[: -len(last_tok)].endswith("\n") or len(stripped) == len(last_tok))
        ):
            return pk.pick(
                (
                    f'A numbered list marker "{lt}" begins a line; the item text follows',
                    f'After the list number "{lt}", the item text comes next',
                )
            )
        if c == "?" or stripped[-2:-1] == "?":
            return pk.pick(
                (
                    f'A question just ended with "{lw}"; an answer or a new sentence follows',
                    f'The question "{lw}" is complete; a reply or next sentence comes next',
                    "Ends on a question mark; a new sentence starts",
                )
            )
        return pk.pick(
            (
                f'A sentence just ended after "{lw}"; a new sentence starts next',
                f'Ends with a full stop after "{lw}", so a new capitalised sentence begins',
                f'The sentence ending "{lw}" is complete; the next sentence or paragraph follows',
                "A sentence boundary: the next token starts a new sentence",
            )
        )
    if c == ",":
        return pk.pick(
            (
                f'After a comma following "{lw[:-1] if lw.endswith(",") else lw}", the clause continues',
                f'Ends on "{lw}" so the sentence goes on with another clause or list item',
                "Mid-sentence after a comma; a continuing phrase or clause follows",
            )
        )
    if c == ":":
        return pk.pick(
            (
                f'Ends with a colon after "{lw}"; an explanation, list or quotation follows',
                f'A colon closes "{lw}"; what it introduces comes next',
            )
        )
    if c == ";":
        return pk.pick(
            (
                f'After a semicolon following "{lw}", a related independent clause follows',
                "A semicolon joins clauses; the second clause comes next",
            )
        )
    if c in "-\u2014\u2013":
        return pk.pick(
            (
                f'Ends on a dash after "{lw}"; an interruption, aside or compound continues',
                "A dash leaves the thought hanging; an aside or continuation follows",
            )
        )
    if c in "([{":
        return pk.pick(
            (
                f"An opening {_BRACKET_NAMES[c]} just started; the parenthetical content begins",
                f'After "{lw}" a bracket opened; an aside comes before it closes',
            )
        )
    if c in ")]}":
        return pk.pick(
            (
                f'A parenthetical just closed after "{lw}"; the sentence resumes',
                "A bracketed aside ended; the main sentence continues or ends",
            )
        )
    if c.isdigit():
        return pk.pick(
            (
                f'Ends on the number "{lt}"; more digits, a unit or a noun follows',
                f'After the figure "{lt}", a unit, punctuation or noun comes next',
            )
        )
    if c.isalpha():
        word = _RE_TAIL_WORD.search(stripped[-60:])
        wtxt = word.group() if word else last_tok
        wq = _q(wtxt, 18)
        lower = wtxt.lower()
        if space or lower in _FUNCTION_WORDS:
            follow = _word_class_follow(lower, pk)
            if lower in _FUNCTION_WORDS:
                return pk.pick(
                    (
                        f'Mid-sentence after "{lw}"; {follow}',
                        f'The text stops after "{wq}", so {follow}',
                        f'Ends with the word "{wq}"; {follow}',
                    )
                )
            return pk.pick(
                (
                    f'Mid-sentence after "{lw}" and a space; {follow}',
                    f'The word "{wq}" is complete; {follow}',
                )
            )
        if (
            lower in _STOPWORDS
            or lower in _SPEECH_VERBS
            or (len(lower) >= 5 and lower.endswith(_WORD_ENDINGS))
        ):
            follow = _word_class_follow(lower, pk)
            return pk.pick(
                (
                    f'Ends on "{wq}" with no space, probably a whole word; {follow}',
                    f'The last word "{wq}" is likely complete, unless it is extended; {follow}',
                    f'Ends right after "{lw}"; {follow}',
                )
            )
        if len(lower) <= 2 or not lower.isascii():
            return pk.pick(
                (
                    f'Ends mid-word on "{wq}"; the word must be completed',
                    f'Cut inside the word "{wq}", which the next token completes',
                )
            )
        return pk.pick(
            (
                f'Ends mid-word on "{wq}"; the word must be completed before the sentence goes on',
                f'The last word "{wq}" looks unfinished; its remaining letters come next',
                f'Cut inside the word "{wq}", which must be completed',
                f'Ends on "{wq}" with no space; the word may be partial and must be completed',
            )
        )
    return pk.pick(
        (
            f'The text ends with "{lw}"; the sentence continues',
            f'Ends on "{lw}"; more text must follow',
        )
    )


def _prose_end(doc: _Doc, pk: _Picker, text: str | None = None) -> str:
    text = doc.win if text is None else text
    stripped = text.rstrip()
    para = stripped[-_PARA_WINDOW:]
    k = para.rfind("\n\n")
    if k >= 0:
        para = para[k + 2 :]
    if doc.genre == "dialogue":
        para = para.rsplit("\n", 1)[-1]
    core = _prose_core(text, pk, doc.genre)
    if text != stripped and "\n" in text[len(stripped) :]:
        return core  # quotes and brackets do not survive a line break here
    state = _prose_open_state(para)
    if state is None:
        return core
    ch, pos = state
    if ch in _BRACKET_NAMES:
        what = _BRACKET_NAMES[ch]
        if pos == len(para) - 1:
            return core
        return pk.fit(
            (
                f"Inside an open {what}: {_lower_first(core)}",
                f"{core}; the {what} must still be closed",
            )
        )
    what = _QUOTE_NAMES[ch]
    speech = "quoted speech" if doc.genre in ("narrative", "dialogue") else "a quotation"
    if pos == len(para) - 1:
        lw = _last_words(para[:-1])
        if not lw:
            return pk.pick(
                (
                    f"A line opens with a {what}; the quoted words begin next",
                    "A new quotation just opened; its first words come next",
                )
            )
        return pk.pick(
            (
                f'An opening {what} after "{lw}"; the quoted words begin next',
                f"A {what} just opened, so the first words of a quotation follow",
                f'{speech[0].upper()}{speech[1:]} starts right after "{lw}"; its first words come next',
            )
        )
    return pk.fit(
        (
            f"Inside an open {what}: {_lower_first(core)}",
            f"Within unclosed {speech}, {_lower_first(core)}",
            f"{core}; the {what} is still open and must close",
        )
    )


def _structured_end(doc: _Doc, pk: _Picker) -> str | None:
    cur = doc.cur
    win = doc.win
    sub = doc.sub
    prev = next((ln for ln in reversed(doc.lines[:-1]) if ln.strip()), "")

    if sub == "table" or cur.count("|") >= 1 and prev.count("|") >= 2:
        cols = _table_header(doc)
        if not cur.strip():
            first = cols[0] if cols and cols[0] else None
            return pk.pick(
                (
                    "A table row just ended; the next row begins with a pipe"
                    + (f" and the {first} cell" if first else ""),
                    "End of a table row; a new row of cells follows on the next line",
                    "The row is complete; the next row of the table comes next",
                )
            )
        s = cur.strip()
        idx = s.count("|") - (1 if s.startswith("|") else 0)
        at_boundary = cur.rstrip().endswith("|")
        col = cols[idx] if 0 <= idx < len(cols) and cols[idx] else None
        if at_boundary and cols and idx >= len(cols):
            return pk.pick(
                (
                    "The last cell of the row is closed; a newline and the next row follow",
                    "A table row just finished with a pipe; the next row starts on a new line",
                )
            )
        if at_boundary:
            return pk.pick(
                (
                    f"After a cell separator; the {col} cell comes next"
                    if col
                    else "After a cell separator; the next cell's value follows",
                    f"Mid-row in the table; the next cell, {col}, follows"
                    if col
                    else "Mid-row; the next cell follows",
                )
            )
        w = _last_words(s.rsplit("|", 1)[-1])
        return pk.pick(
            (
                f'Inside the {col} cell at "{w}"; the cell ends with a pipe'
                if col
                else f'Inside a table cell at "{w}"; a pipe ends it',
                f'Writing a cell value "{w}"; then a pipe and the next cell'
                if w
                else "Writing a cell value; then a pipe and the next cell",
            )
        )

    if sub == "csv":
        cols, sep = _csv_header(doc)
        if not cur.strip():
            first = cols[0] if cols and cols[0] else None
            return pk.pick(
                (
                    "A record just ended; the next row starts"
                    + (f" with its {first} field" if first else ""),
                    "End of a CSV row; a new line of delimited values follows",
                )
            )
        idx = cur.count(sep)
        col = cols[idx] if 0 <= idx < len(cols) and cols[idx] else None
        if cur.rstrip(" ").endswith(sep):
            return pk.pick(
                (
                    f"After a delimiter; the {col} value comes next"
                    if col
                    else "After a delimiter; the next field follows",
                    f"Mid-row, field {idx + 1} is about to be written"
                    + (f", the {col}" if col else ""),
                )
            )
        w = _last_words(cur.rsplit(sep, 1)[-1])
        return pk.pick(
            (
                f'Writing the {col} field at "{w}"; a delimiter or line end follows'
                if col
                else f'Writing field {idx + 1} at "{w}"; a delimiter or newline follows',
                f'Mid-field "{w}" in a record; the value finishes, then the next field'
                if w
                else "Mid-field in a record; the value finishes, then the next field",
            )
        )

    tail = win.rstrip()
    if sub == "json" and tail:
        c = tail[-1]
        key = _RE_TAIL_KEY.search(tail[-80:])
        if key:
            k = _q(key.group(1), 16)
            return pk.pick(
                (
                    f'After the key "{k}" and a colon; its value follows',
                    f'The value for "{k}" must come next',
                )
            )
        keys = [m.group(1) for m in _RE_JSON_KEY_NAME.finditer(win[-800:])]
        nxt = _next_in_cycle(keys)
        nk = f'"{_q(nxt, 16)}"' if nxt else "the next key"
        if cur.count('"') % 2 == 1:
            last = _q(keys[-1], 16) if keys else None
            w = _last_words(cur.rsplit('"', 1)[-1])
            where = f'the "{last}" value' if last else "a string value"
            return pk.pick(
                (
                    f'Inside {where} at "{w}"; the string continues, then a closing quote'
                    if w
                    else f"A string value just opened in {where}; its text follows",
                    f"An open string in {where}; a closing double quote, then a comma and {nk}",
                )
            )
        if c == ",":
            return pk.pick(
                (
                    f"After a comma in a record; the next key-value pair, {nk}, follows",
                    f"A comma ends a field; {nk} comes next",
                )
            )
        if c.isdigit() or tail.endswith(("true", "false", "null", '"')):
            last = _q(keys[-1], 16) if keys else None
            return pk.pick(
                (
                    f'The "{last}" value may be complete; a comma and {nk} follow'
                    if last
                    else f"A value may be complete; a comma and {nk} follow",
                    f'Ends on the value "{_last_words(tail, 1)}"; more characters, or a comma and {nk}',
                )
            )
        if c in "{[":
            return pk.pick(
                (
                    f"Just opened a {_BRACKET_NAMES[c]}; the first entry follows",
                    f"An open {_BRACKET_NAMES[c]} begins a record; its first key or element comes next",
                )
            )
        if c in "}]":
            return pk.pick(
                (
                    "A record just closed; a comma and the next record, or the outer close, follows",
                    "An object closed; the list continues or ends",
                )
            )

    m = _RE_LIST_MARK.match(cur)
    if m and cur.strip() == m.group(1):
        mk = _q(m.group(1), 4)
        return pk.pick(
            (
                f'A new list item marker "{mk}" was written; the item text follows'
                if mk
                else "A new bullet was written; the item text follows",
                "A list marker starts a new item; its text comes next",
            )
        )
    if m:
        core = _prose_core(cur[m.end() :], pk, doc.genre)
        return pk.fit(
            (
                f"Inside a list item: {_lower_first(core)}",
                f"{core}; the item ends at the line break and the next item follows",
            )
        )
    if not cur.strip():
        pm = _RE_LIST_MARK.match(prev)
        if pm:
            marker = pm.group(1)
            if marker[:-1].isdigit():
                nxt = f"item {int(marker[:-1]) + 1}"
            else:
                nxt = "another item with the same marker"
            return pk.pick(
                (
                    f'A list item ending "{_last_words(prev)}" is done; {nxt} follows',
                    f"End of a list line; {nxt} comes next",
                    "The list continues on the next line with a new item",
                )
            )
        keys = _kv_keys(doc)
        if keys and ":" in prev:
            nxt = _next_in_cycle(keys)
            n = _q(nxt, 16) if nxt else None
            return pk.pick(
                (
                    f"A field line just ended; the next field, likely {n}, follows"
                    if n
                    else "A field line ended; the next labelled field follows",
                    "End of a record line; the next label and value come next",
                )
            )
    kv = re.match(r"^[ \t]*[\"']?([A-Za-z][\w .'/-]{0,30})[\"']?[ \t]*:[ \t]*$", cur)
    if kv:
        k = _q(kv.group(1), 16)
        return pk.pick(
            (
                f'After the field label "{k}:"; its value follows',
                f'The "{k}" field needs its value next',
            )
        )
    return None


def _dialogue_end(doc: _Doc, pk: _Picker) -> str | None:
    cur = doc.cur
    m = _RE_SPEAKER_TAG.match(cur)
    if m and not cur[m.end() :].strip():
        name = _q((m.group(1) or m.group(2)).strip(), 16)
        tag = name if m.group(1) else name + ":"
        return pk.pick(
            (
                f'Right after the speaker tag "{tag}"; {name}\'s words begin',
                f"The speaker tag for {name} was just written, so their utterance follows",
                f"A new turn by {name} starts here; the first words of the turn come next",
            )
        )
    if not cur.strip() and doc.speakers:
        tags = doc.speakers
        nxt = None
        if len(tags) >= 2 and tags[-2] != tags[-1]:
            nxt = _q(tags[-2], 16)
        last = _q(tags[-1], 16)
        return pk.pick(
            (
                f"{last}'s turn just ended; the next speaker tag follows"
                + (f", likely {nxt}" if nxt else ""),
                "A turn ended at the line break; a new speaker line begins"
                + (f", probably {nxt}'s" if nxt else ""),
            )
        )
    if m:
        utter = cur[m.end() :]
        return _prose_end(doc, pk, utter)
    return None


def _feature_end(doc: _Doc, pk: _Picker) -> str:
    if doc.genre == "code" or doc.fence_open:
        return _code_end(doc, pk)
    if doc.genre == "structured":
        out = _structured_end(doc, pk)
        if out:
            return out
    if doc.genre == "dialogue":
        out = _dialogue_end(doc, pk)
        if out:
            return out
    return _prose_end(doc, pk)


# ---------------------------------------------------------------------------------------------
# Teacher
# ---------------------------------------------------------------------------------------------

_FALLBACK = (
    "A text document whose kind is unclear",
    "The text continues from its last words",
)
_EMPTY = (
    (
        "An empty document with no content yet",
        "Nothing to continue from; the first words of a document come next",
    ),
    (
        "No text has been written so far",
        "The very start of a document; its opening words must follow",
    ),
    (
        "Blank input with no genre or topic cues",
        "Only whitespace so far; the first word of the document comes next",
    ),
)


def _safe(feature: str) -> str:
    """Last-resort sanitiser for a feature the validator rejected."""
    f = _RE_UNDERSCORES.sub("_", feature.translate(_DROP))
    f = re.sub(r"[^\w\s.,;:!?'()\-]", " ", f)
    return _clip(_RE_SPACES.sub(" ", f).strip().lstrip("-0123456789.() ")) or "More text follows"


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
        out: list[str | None] = []
        for p in prefixes:
            out.append(self.explain_one(p))
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
            return "\n".join(_FALLBACK)

    def _explain(self, text: str) -> str:
        pk = _Picker(text, self._key)
        if not text.strip():
            return "\n".join(pk.pick(_EMPTY))
        doc = _Doc(text)
        features = [_feature_genre(doc, pk)]
        ctx = _CONTEXT[doc.genre](doc, pk)
        if ctx:
            features.append(ctx)
        features.append(_feature_end(doc, pk))
        features = [_clip(f[:1].upper() + f[1:]) for f in features]
        joined = "\n".join(features)
        parsed = parse_explanation(joined)
        if parsed is not None and parsed == joined:
            return parsed
        features = [_safe(f) for f in features]
        parsed = parse_explanation("\n".join(features))
        return parsed if parsed is not None else "\n".join(_FALLBACK)
