"""Ground-truth properties of each activation: what is known about its position, from the data.

Why: an explanation can read well and still say things that are false about the vector it came
from. These facts are known for every row without any model, so the evaluation can check the
explanation against them (`nla_variants.evaluation.faithfulness`). Each is a function of the row's prefix
text, its current and next token and the dataset's labels; `docs/evaluation.md` gives the exact
rules and their blind spots.

| property | kind | value |
|---|---|---|
| genre | label | the corpus' genre label (None when the corpus has none) |
| token | label | the prefix's last token, as text |
| next_token | label | the token after the prefix, as text (None at the end of a document) |
| in_code_block | flag | inside an open ``` fence |
| in_string | flag | inside a string literal: Python code, or a quoted value on a structured line |
| in_quote | flag | inside an open double quotation in prose (the current paragraph) |
| in_list_item | flag | the current line is a list item (bullet or number marker) |
| open_bracket | flag | an unclosed ( [ { (code: anywhere; text: the current paragraph) |
| mid_word | binary | the last word is cut: the next token continues it without a space |
| mid_sentence | binary | prose only: the text does not end at a sentence end or a line break |
| line_start | flag | the next token starts a new line |
| tuned_genre | label | diff datasets: the genre the second model was fine-tuned on |

`nla prepare` stores them as columns (`property_columns`); `load_properties` reads them back, and
computes them on demand for a dataset written before they existed (same rules, the current token
re-tokenised from the prefix). Bump `PROPERTIES_VERSION` whenever a rule changes: stored columns
of another version are recomputed, never trusted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nla_variants.common.errors import NLAError
from nla_variants.common.schema import DatasetSidecar, FinetuneSidecar

PROPERTIES_VERSION = 1

LABEL, BINARY, FLAG = "label", "binary", "flag"


@dataclass(frozen=True)
class Property:
    """One ground-truth property. `kind`: label (any value), binary (True/False, both stated by
    explanations) or flag (a rare state that explanations assert, never deny)."""

    name: str
    kind: str
    about: str


PROPERTIES: tuple[Property, ...] = (
    Property("genre", LABEL, "the corpus genre label"),
    Property("token", LABEL, "the last token of the prefix"),
    Property("next_token", LABEL, "the token after the prefix"),
    Property("in_code_block", FLAG, "inside an open ``` code fence"),
    Property("in_string", FLAG, "inside a string literal"),
    Property("in_quote", FLAG, "inside an open quotation in prose"),
    Property("in_list_item", FLAG, "on a list item line"),
    Property("open_bracket", FLAG, "an unclosed bracket"),
    Property("mid_word", BINARY, "the last word continues in the next token"),
    Property("mid_sentence", BINARY, "prose: not at a sentence end or line break"),
    Property("line_start", FLAG, "the next token starts a new line"),
    Property("tuned_genre", LABEL, "diff datasets: the genre the second model was tuned on"),
)
BY_NAME = {p.name: p for p in PROPERTIES}
STRUCTURE = tuple(p.name for p in PROPERTIES[3:11])  # the flags computed from the text
STORED = ("token", "next_token", *STRUCTURE, "tuned_genre")  # genre is an older column

_CODE, _STRUCTURED = "code", "structured"
_NOT_PROSE = (_CODE, _STRUCTURED)
_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)
_LIST_MARK = re.compile(r"^[ \t]*(?:[-*+\u2022]|\d{1,3}[.)])(?:[ \t]|$)")
_TRIPLE_END = {q: re.compile(r"(?:\\.|[^\\])*?" + q, re.S) for q in ('"""', "'''")}
_LINE_END = {q: re.compile(r"(?:\\.|[^\\\n])*?(?:" + q + r"|\n)") for q in ('"', "'")}
_UNESCAPED_QUOTE = re.compile(r'(?<!\\)"')
_PAIRS = {")": "(", "]": "[", "}": "{"}
_SENTENCE_END = ".!?\u2026"
_CLOSERS = "\"'\u201d\u2019)]"
# Full stops that end an abbreviation, not a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "vs",
        "etc",
        "jr",
        "sr",
        "prof",
        "inc",
        "fig",
        "no",
        "mt",
        "gen",
        "col",
        "lt",
        "sgt",
        "e.g",
        "i.e",
        "cf",
        "approx",
    ]
)
_LAST_WORD = re.compile(r"([\w.]+)\.$")


def _code_state(src: str) -> tuple[bool, bool]:
    """(inside a string literal, an unclosed bracket) at the end of Python source: comments and
    closed strings are skipped whole; a one-line string left open at a line break is closed
    there (a syntax error, not a string that runs on)."""
    stack: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "#":
            end = src.find("\n", i)
            if end < 0:
                break
            i = end + 1
        elif c in "\"'":
            quote = c * 3 if src.startswith(c * 3, i) else c
            end = (_TRIPLE_END if len(quote) == 3 else _LINE_END)[quote].match(src, i + len(quote))
            if end is None:
                return True, bool(stack)
            i = end.end()
        else:
            if c in "([{":
                stack.append(c)
            elif c in _PAIRS and stack and stack[-1] == _PAIRS[c]:
                stack.pop()
            i += 1
    return False, bool(stack)


def _open_bracket(text: str) -> bool:
    stack: list[str] = []
    for c in text:
        if c in "([{":
            stack.append(c)
        elif c in _PAIRS and stack and stack[-1] == _PAIRS[c]:
            stack.pop()
    return bool(stack)


def _sentence_ended(text: str) -> bool:
    """Does the (space-stripped, non-empty) text end at a sentence end? Closing quotes and
    brackets after the mark are skipped; a full stop after a known abbreviation is not one."""
    core = text.rstrip(_CLOSERS) or text
    if core[-1] not in _SENTENCE_END:
        return False
    word = _LAST_WORD.search(core[-24:]) if core[-1] == "." else None
    return not (word and word.group(1).lower() in _ABBREVIATIONS)


def structure(prefix: str, genre: str | None, next_token: str | None) -> dict[str, bool | None]:
    """The structural properties of the position right after `prefix` (see the module table).
    `genre` selects the rules: code (Python strings and brackets), structured (strings are
    quoted values on the line) or prose (quotations, sentences); None reads as prose."""
    text = prefix.replace("\r\n", "\n").replace("\r", "\n")
    line = text.rsplit("\n", 1)[-1]
    fences = len(_FENCE.findall(text))
    in_fence = fences % 2 == 1
    kind = genre if genre in _NOT_PROSE else "prose"
    if in_fence:  # the code after the opening fence line
        kind = _CODE
        start = list(_FENCE.finditer(text))[-1].end()
        newline = text.find("\n", start)
        code = text[newline + 1 :] if newline >= 0 else ""
    else:
        code = text
    paragraph = text.rsplit("\n\n", 1)[-1]
    in_string = in_quote = in_list = False
    if kind == _CODE:
        in_string, bracket = _code_state(code)
    else:
        bracket = _open_bracket(paragraph)
        in_list = bool(_LIST_MARK.match(line))
        if kind == _STRUCTURED:
            in_string = len(_UNESCAPED_QUOTE.findall(line)) % 2 == 1
        else:
            in_quote = paragraph.count('"') % 2 == 1 or paragraph.count("\u201c") > paragraph.count(
                "\u201d"
            )
    last = text[-1:]
    nxt = (next_token or "")[:1]
    stripped = text.rstrip(" \t")
    at_line_start = "\n" in text and not line.strip(" \t")
    mid_sentence = None
    if kind not in _NOT_PROSE:
        mid_sentence = bool(stripped) and not at_line_start and not _sentence_ended(stripped)
    return {
        "in_code_block": in_fence,
        "in_string": in_string,
        "in_quote": in_quote,
        "in_list_item": in_list,
        "open_bracket": bracket,
        "mid_word": bool(last) and _wordy(last) and bool(nxt) and _wordy(nxt),
        "mid_sentence": mid_sentence,
        "line_start": at_line_start,
    }


def _wordy(c: str) -> bool:
    return c.isalnum() or c == "_"


def property_columns(
    prefixes: Sequence[str],
    genres: Sequence[str | None],
    tokens: Sequence[str],
    next_tokens: Sequence[str | None],
    tuned_genre: str | None = None,
) -> dict[str, list[Any]]:
    """The stored property columns (`STORED`) of rows, from their prefix, genre and tokens."""
    out: dict[str, list[Any]] = {name: [] for name in STORED}
    for prefix, genre, token, nxt in zip(prefixes, genres, tokens, next_tokens, strict=True):
        out["token"].append(token)
        out["next_token"].append(nxt)
        for name, value in structure(prefix, genre, nxt).items():
            out[name].append(value)
        out["tuned_genre"].append(tuned_genre)
    return out


def finetune_genre(spec: str | None) -> str | None:
    """The genre a second model was fine-tuned on (`nla finetune` records it), or None."""
    if not spec or not (Path(spec) / FinetuneSidecar.FILE).is_file():
        return None
    return FinetuneSidecar.read(spec).genre


@dataclass
class PropertyTable:
    """Property values of the rows of one split, by row (aligned with `example_ids`)."""

    example_ids: list[str]
    values: dict[str, list[Any]]
    computed: bool  # computed on demand (the dataset has no current property columns)

    def __len__(self) -> int:
        return len(self.example_ids)

    def present(self) -> list[str]:
        """Properties with a value on some row (a corpus without labels has no genre)."""
        return [p.name for p in PROPERTIES if any(v is not None for v in self.values[p.name])]

    def take(self, ids: Sequence[str]) -> PropertyTable:
        """The rows with these example ids, in this order."""
        where = {e: i for i, e in enumerate(self.example_ids)}
        missing = [e for e in ids if e not in where]
        if missing:
            raise NLAError(
                f"no properties for example {missing[0]!r}", "score rows of the same dataset"
            )
        index = [where[e] for e in ids]
        values = {k: [v[i] for i in index] for k, v in self.values.items()}
        return PropertyTable(list(ids), values, self.computed)


def stored(meta: DatasetSidecar) -> bool:
    """Does the dataset hold property columns of the current rules?"""
    return meta.properties is not None and meta.properties.version == PROPERTIES_VERSION


def load_properties(dataset, split: str | None = None) -> PropertyTable:
    """Every property of the rows of `split` (all rows when None): the stored columns, or, for a
    dataset written before them (or under other rules), computed now from the stored prefix,
    next token id and genre with the dataset's tokenizer."""
    base = ["example_id", "genre", "prefix", "next_token_id"]
    if stored(dataset.meta):
        table = dataset.table(split, ["example_id", "genre", *STORED])
        values = {name: table.column(name).to_pylist() for name in ("genre", *STORED)}
        return PropertyTable(table.column("example_id").to_pylist(), values, False)
    table = dataset.table(split, base)
    prefixes = table.column("prefix").to_pylist()
    genres = table.column("genre").to_pylist()
    tokens, next_tokens = _token_texts(dataset, prefixes, table.column("next_token_id").to_pylist())
    spec = dataset.meta.diff_model.spec if dataset.meta.diff_model else None
    values = {"genre": genres, **property_columns(prefixes, genres, tokens, next_tokens)}
    values["tuned_genre"] = [finetune_genre(spec)] * len(prefixes)
    return PropertyTable(table.column("example_id").to_pylist(), values, True)


def _token_texts(
    dataset, prefixes: list[str], next_ids: list[int]
) -> tuple[list[str], list[str | None]]:
    """(current token, next token) texts: the prefix re-tokenised (its last token) and the stored
    next token id, decoded with the dataset's tokenizer."""

    from nla_variants.target import load_tokenizer, resolve_model

    spec = dataset.meta.model.spec
    try:
        tokenizer = load_tokenizer(resolve_model(spec).load_path)
    except (OSError, ValueError, NLAError) as e:
        raise NLAError(
            f"dataset {dataset.path} has no property columns and its model {spec} cannot be "
            f"read to compute them ({' '.join(str(e).split())[:160]})",
            "make the dataset's model available, or prepare the dataset again",
        ) from None
    ids = tokenizer(prefixes, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    current = [tokenizer.decode([seq[-1]]) if seq else "" for seq in ids]
    following = [tokenizer.decode([i]) if i is not None and i >= 0 else None for i in next_ids]
    return current, following
