"""Shared pieces of the heuristic teacher: word lists, phrase templates, the picker, snippets.

Why: every rule module reads the same vocabulary (`words.yaml`) and writes through the same
phrase book (`phrases.yaml`), so wording lives in data and the modules keep only the logic.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nla_variants.data.teachers.base import MAX_FEATURE_CHARS

_T = TypeVar("_T")
_HERE = Path(__file__).parent


def _read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping with its lists as tuples (read once, at import)."""

    def frozen(value: Any) -> Any:
        if isinstance(value, list):
            return tuple(frozen(v) for v in value)
        return {k: frozen(v) for k, v in value.items()} if isinstance(value, dict) else value

    with open(path, encoding="utf-8") as f:
        return frozen(yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


WORDS = _read_yaml(_HERE / "words.yaml")
# Each key: the alternatives for one situation. An alternative is a template, or a pair
# [template, fallback] where the fallback is used when a slot only the template names is empty.
PHRASES: dict[str, tuple[str | tuple[str, str], ...]] = _read_yaml(_HERE / "phrases.yaml")

MAX_WORDS = 25  # per feature; stricter than the validator's limit
WINDOW = 2400  # chars of the prefix tail that the rules read
GENRE_WINDOW = 800  # chars the genre scores and topic words read
PARA_WINDOW = 900  # chars of the last paragraph scanned for open quotes and brackets

_set = frozenset
CODE_STOP = _set(WORDS["code_stop"])  # identifiers and keywords that carry no topic in code or docs
DETERMINERS = _set(WORDS["determiners"])
PREPOSITIONS = _set(WORDS["prepositions"])
AUXILIARIES = _set(WORDS["auxiliaries"])
SUBJECTS = _set(WORDS["subjects"])
CONJUNCTIONS = _set(WORDS["conjunctions"])
SPEECH_VERBS = _set(WORDS["speech_verbs"])
PY_KEYWORDS = _set(WORDS["py_keywords"])
ABBREVIATIONS = _set(WORDS["abbreviations"])
CHAT_ROLES = _set(WORDS["chat_roles"])
FUNCTION_WORDS = DETERMINERS | PREPOSITIONS | AUXILIARIES | SUBJECTS | CONJUNCTIONS | {"to", "the"}
STOPWORDS = _set(WORDS["stopwords"]) | FUNCTION_WORDS
# Endings that usually close an English word: a cut right after them is probably at a word end.
WORD_ENDINGS = ("ed", "ing", "tion", "sion", "ment", "ness", "ly", "ful", "ous", "ity", "es")

QUOTE_NAMES = {'"': "double quote", "“": "double quote", "'": "single quote", "‘": "single quote"}
BRACKET_NAMES = {"(": "parenthesis", "[": "square bracket", "{": "curly brace"}
CLOSERS = {"(": ")", "[": "]", "{": "}"}
OPENERS = {")": "(", "]": "[", "}": "{"}

_M = re.MULTILINE
RE_LIST_LINE = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])[ \t]+\S", _M)
RE_KV_LINE = re.compile(r"^[ \t]*[\"']?[A-Za-z][^:=\n]{0,30}[:=][^\n]{0,24}$", _M)
RE_JSON_KEY = re.compile(r"\"[\w .-]{1,30}\"\s*:")
RE_DIGITS = re.compile(r"[0-9]+")
_SPEAKER_CORE = (
    r"(?:\[?\d{1,2}:\d{2}(?::\d{2})?\]?[ \t]*)?"
    r"(?:<([\w .-]{1,20})>|([A-Za-z][\w.'-]{0,20}(?: [A-Z][\w.'-]{0,20})?)[ \t]*:)"
)
RE_SPEAKER_LINE = re.compile(r"^[ \t]*" + _SPEAKER_CORE + r"[ \t]+(\S[^\n]*)", _M)
RE_SPEAKER_TAG = re.compile(r"^[ \t]*" + _SPEAKER_CORE, _M)
RE_QUOTE_LINE = re.compile(r"^[ \t]*[\"\u201c\u2014][^\n]{0,120}$", _M)
RE_LIST_MARK = re.compile(r"^[ \t]*([-*+\u2022]|\d{1,3}[.)])(?:[ \t]+|$)")
RE_UNDERSCORES = re.compile(r"_{2,}")
RE_SPACES = re.compile(r"\s+")

# Markup, quotes, backslashes, control characters and everything `str.splitlines` breaks on.
DROP = str.maketrans(
    {c: " " for c in '*#<>`"\u201c\u201d\\\x85\u2028\u2029\u200b\u200c\u200d\u200e\u200f\ufeff'}
    | {chr(i): " " for i in [*range(32), 127]}
)


class Picker:
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
        """Like `pick`, but the shortest option when the pick is over the word limit."""
        choice = self.pick(options)
        if len(choice.split()) <= MAX_WORDS:
            return choice
        return min(options, key=lambda o: len(o.split()))

    def flip(self, percent: int) -> bool:
        i = self._i
        self._i += 1
        return self._d[(i * 3) % 32] * 100 < percent * 256

    def say(self, key: str, **slots: object) -> str:
        """One alternative of the phrase list `key`, filled in."""
        return _fill(self.pick(PHRASES[key]), slots)

    def say_fit(self, key: str, **slots: object) -> str:
        """Like `say`, within the word limit (see `fit`)."""
        return self.fit([_fill(t, slots) for t in PHRASES[key]])


@functools.cache
def _slots_of(template: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def _fill(option: str | tuple[str, str], slots: dict[str, object]) -> str:
    if not isinstance(option, str):
        full, short = option
        needed = _slots_of(full) - _slots_of(short)
        option = full if all(slots.get(name) for name in needed) else short
    return option.format(**slots)


def q(s: str, maxlen: int = 24, keep_end: bool = True) -> str:
    """A snippet safe to quote inside a feature: one line, no markup, short."""
    if not s.isascii():
        s = s.encode("utf-8", "ignore").decode("utf-8")  # drops lone surrogates
    s = RE_UNDERSCORES.sub("_", s.translate(DROP))
    s = RE_SPACES.sub(" ", s).strip()
    if len(s) > maxlen:
        s = (
            ("..." + s[-(maxlen - 3) :].lstrip())
            if keep_end
            else (s[: maxlen - 3].rstrip() + "...")
        )
    return s


def clip(feature: str) -> str:
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


def join_words(words: Sequence[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def last_words(s: str, n: int = 3, maxlen: int = 28) -> str:
    """The last 1-n whitespace-separated tokens of `s`, sanitised."""
    toks = s[-120:].split()[-n:]
    out = q(" ".join(toks), maxlen)
    while len(toks) > 1 and (len(out) > maxlen - 4 or out.startswith("...")):
        toks = toks[1:]
        out = q(" ".join(toks), maxlen)
    return out


def lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[:2] != "I " else s


def next_in_cycle(keys: list[str]) -> str | None:
    """In repeating records, the key that followed the last key the previous time it appeared."""
    if not keys:
        return None
    last = keys[-1]
    for i in range(len(keys) - 2, -1, -1):
        if keys[i] == last:
            return keys[i + 1]
    return None
