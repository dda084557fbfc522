"""Meaning-preserving rewrites of an explanation, for the perturbation battery (`nla compare
--cross`).

Why: the worry about NLAs trained against their own AR is a private code: text the AR inverts
through its form (an order of lines, a stock phrase, a quoted string) rather than through what it
says. An AR that reads meaning loses little when the same content is said another way; one that
reads form loses much. Each rewrite here keeps the content and changes one kind of form:

- `reorder_lines`: the same lines in another order (reversed);
- `teacher_synonyms`: each stock phrase of the heuristic teacher swapped for another of its own
  alternatives for the same situation, slots kept (the teacher's phrase book is its thesaurus);
- `drop_literals`: numbers and quoted spans removed (what remains says the same about the kind
  of text and the position, less the verbatim evidence).

A rewrite that finds nothing to change returns the text unchanged; the battery reports the share
of explanations each rewrite changed beside the FVE it cost.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable

from nla_variants.data.teachers.heuristic.common import PHRASES, _slots_of


def reorder_lines(text: str) -> str:
    """The explanation's non-empty lines, last first."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(reversed(lines))


_QUOTED = re.compile(r'"[^"\n]*"|“[^”\n]*”|‘[^’\n]*’|`[^`\n]*`|(?<!\w)\'[^\'\n]*\'(?!\w)')
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?%?(?![\w.])")
_SPACES = re.compile(r"[ \t]{2,}")
_BEFORE_MARK = re.compile(r"[ \t]+([;,.:!?])")


def drop_literals(text: str) -> str:
    """The explanation without its quoted spans and numbers."""
    out = _NUMBER.sub("", _QUOTED.sub("", text))
    lines = (_BEFORE_MARK.sub(r"\1", _SPACES.sub(" ", line)).strip() for line in out.splitlines())
    return "\n".join(lines)


def _alternatives(option: str | tuple[str, ...]) -> tuple[str, ...]:
    return option if isinstance(option, tuple) else (option,)


@functools.cache
def _phrase_book() -> tuple[list[tuple[re.Pattern[str], str, tuple[str, ...]]], dict[str, str]]:
    """(templates as anchored patterns with their key's alternatives, literal phrase -> its
    next alternative): built once from the teacher's phrase book."""
    templates: list[tuple[int, re.Pattern[str], str, tuple[str, ...]]] = []
    literals: dict[str, str] = {}
    for options in PHRASES.values():
        alternatives = tuple(a for o in options for a in _alternatives(o))
        for i, a in enumerate(alternatives):
            slots = _slots_of(a)
            if not slots:
                others = [b for b in alternatives[i + 1 :] + alternatives[:i] if b != a]
                plain = [b for b in others if not _slots_of(b)]
                if plain:
                    literals.setdefault(a, plain[0])
                continue
            pattern, seen = "", set()
            for literal, name, _, _ in string.Formatter().parse(a):
                pattern += re.escape(literal)
                if name:
                    pattern += f"(?P={name})" if name in seen else f"(?P<{name}>.+?)"
                    seen.add(name)
            fixed = len(re.sub(r"\{[^}]*\}", "", a))
            templates.append((fixed, re.compile(f"^{pattern}$"), a, alternatives))
    templates.sort(key=lambda t: -t[0])  # the most specific template first
    return [(p, a, alts) for _, p, a, alts in templates], literals


def _swap(phrase: str, depth: int = 0) -> str:
    """`phrase` said with another of the teacher's alternatives, where the book has one."""
    templates, literals = _phrase_book()
    if phrase in literals:
        return literals[phrase]
    if depth > 2:
        return phrase
    for pattern, original, alternatives in templates:
        m = pattern.match(phrase)
        if m is None:
            continue
        slots = {k: _swap(v, depth + 1) for k, v in m.groupdict().items()}
        i = alternatives.index(original)
        for b in alternatives[i + 1 :] + alternatives[:i]:
            if b != original and _slots_of(b) == set(slots):  # says all the original said
                return b.format(**slots)
        return original.format(**slots)
    return phrase


def teacher_synonyms(text: str) -> str:
    """Each line (and each `;`-joined clause a line is not whole in the book) said with another
    of the heuristic teacher's own phrasings for the same situation."""
    out = []
    for line in text.splitlines():
        swapped = _swap(line)
        if swapped == line and "; " in line:
            swapped = "; ".join(_swap(part) for part in line.split("; "))
        out.append(swapped)
    return "\n".join(out)


PERTURBATIONS: dict[str, Callable[[str], str]] = {
    "lines reordered": reorder_lines,
    "teacher synonyms": teacher_synonyms,
    "numbers and quotes dropped": drop_literals,
}
