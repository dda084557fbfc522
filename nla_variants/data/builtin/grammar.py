"""A tiny Tracery-style template grammar shared by the generated genres.

Why: the generated genres need thousands of distinct, natural-looking documents from a few hundred
lines of hand-written templates. Recursive slot expansion multiplies a small vocabulary into a large
space of sentences; bindings keep a story's characters and places consistent from start to end.

Rules and templates are data: `lexicon(name)` reads `data/<name>.yaml` once per process.
Template syntax: `{name}` expands rule `name` (a random alternative, itself a template) or the
binding `name`; `{^name}` does the same and capitalises the first letter of the result.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

Rule = Sequence[str] | Callable[[random.Random], str]

_SLOT = re.compile(r"\{(\^?)([A-Za-z_][A-Za-z0-9_]*)\}")
_ARTICLE = re.compile(r"\b([Aa]) ((?:[aeiou]|[AEIOU][a-z]|hour|honest|heir)[\w-]*)")
_NOT_AN = ("uni", "use", "usu", "ute", "one", "once", "eu", "ure", "Uni", "Use", "One", "Eu")
_SPACES = re.compile(r"[ \t]+([,.;:!?])|(?<=\S)[ \t]{2,}")


_DATA = Path(__file__).with_name("data")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is there


def _frozen(value: Any) -> Any:
    """Lists become tuples (at any depth): the data is shared by every caller, so immutable."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping with its lists as tuples."""
    with open(path, encoding="utf-8") as f:
        return _frozen(yaml.load(f, Loader=_LOADER))


@functools.cache
def lexicon(name: str) -> dict[str, Any]:
    """The word lists and templates of `data/<name>.yaml`, read once per process."""
    return read_yaml(_DATA / f"{name}.yaml")


def _an(match: re.Match[str]) -> str:
    word = match.group(2)
    if word.startswith(_NOT_AN):
        return match.group(0)
    return f"{match.group(1)}n {word}"


def _tidy_spaces(match: re.Match[str]) -> str:
    return match.group(1) or " "


def tidy(text: str) -> str:
    """Fix `a`/`an` before vowels and stray spaces left by empty slots."""
    return _SPACES.sub(_tidy_spaces, _ARTICLE.sub(_an, text))


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class Grammar:
    """Rules map a name to alternatives (templates) or to a callable `rng -> str`."""

    def __init__(self, *rule_sets: Mapping[str, Rule]) -> None:
        self.rules: dict[str, Rule] = {}
        for rules in rule_sets:
            self.rules.update(rules)
        self._compiled: dict[str, tuple[str | tuple[str, bool], ...]] = {}

    def _compile(self, template: str) -> tuple[str | tuple[str, bool], ...]:
        parts = self._compiled.get(template)
        if parts is None:
            pieces = _SLOT.split(template)
            items: list[str | tuple[str, bool]] = []
            for i in range(0, len(pieces), 3):
                if pieces[i]:
                    items.append(pieces[i])
                if i + 2 < len(pieces):
                    items.append((pieces[i + 2], bool(pieces[i + 1])))
            parts = self._compiled[template] = tuple(items)
        return parts

    def _emit(
        self,
        template: str,
        rng: random.Random,
        bind: Mapping[str, str],
        out: list[str],
        depth: int,
    ) -> None:
        if depth > 30:
            raise RecursionError(f"grammar recursion too deep at {template!r}")
        for item in self._compile(template):
            if type(item) is str:
                out.append(item)
                continue
            name, upper = item
            start = len(out)
            if name in bind:
                out.append(bind[name])
            else:
                rule = self.rules[name]
                if callable(rule):
                    out.append(rule(rng))
                else:
                    self._emit(rule[int(rng.random() * len(rule))], rng, bind, out, depth + 1)
            if upper:
                for j in range(start, len(out)):
                    if out[j]:
                        out[j] = cap(out[j])
                        break

    def __call__(
        self, template: str, rng: random.Random, bind: Mapping[str, str] | None = None
    ) -> str:
        """Expand `template`; bindings take precedence over rules."""
        out: list[str] = []
        self._emit(template, rng, bind or {}, out, 0)
        return "".join(out)

    def pick(self, name: str, rng: random.Random, bind: Mapping[str, str] | None = None) -> str:
        """Expand the rule `name` once."""
        return self("{" + name + "}", rng, bind)

    def check(self, templates: Sequence[str] = (), bound: Sequence[str] = ()) -> None:
        """Raise KeyError naming a slot that neither a rule nor `bound` defines (a test aid)."""
        known = set(self.rules) | set(bound)
        for tpl in templates:
            for item in self._compile(tpl):
                if type(item) is not str and item[0] not in known:
                    raise KeyError(f"template {tpl!r} uses undefined slot {item[0]!r}")
        for name, rule in self.rules.items():
            if callable(rule):
                continue
            for alt in rule:
                for item in self._compile(alt):
                    if type(item) is not str and item[0] not in known:
                        raise KeyError(f"rule {name!r} uses undefined slot {item[0]!r}")


def draw(rng: random.Random, pool: Sequence[str], k: int) -> list[str]:
    """k distinct alternatives (fewer if the pool is smaller): no sentence repeats in a document."""
    return rng.sample(list(pool), min(k, len(pool)))


def target_length(rng: random.Random, low: int = 450, median: int = 800, high: int = 2600) -> int:
    """A document length in characters: log-normal around `median`, clipped to [low, high]."""
    return max(low, min(high, int(rng.lognormvariate(0.0, 0.5) * median)))


def render_document(
    rng: random.Random,
    formats: Sequence[Callable[[random.Random, int], str]],
    *,
    median: int,
    high: int,
    grow: int = 400,
    min_chars: int = 450,
) -> str:
    """Render one randomly chosen format at a sampled target length, raising the target until the
    text reaches `min_chars` (every document must give the sampler enough tokens)."""
    target = target_length(rng, median=median, high=high)
    render = rng.choice(formats)
    text = render(rng, target)
    while len(text) < min_chars:
        target += grow
        text = render(rng, target)
    return text


def number(lo: int, hi: int) -> Callable[[random.Random], str]:
    """A rule producing a random integer in [lo, hi]."""
    return lambda rng: str(rng.randint(lo, hi))
