"""Generated expository prose: local news, encyclopedia-style entries, explainers, reports.

Why: expository text is third-person, present/perfect tense, dense with numbers, dates, named
institutions and attributed quotes; it contrasts with narrative (past-tense scenes, a protagonist)
and dialogue (turns), so a probe must pick up register, not topic. News, reference entries and
explainers share the vocabulary of the other generated genres on purpose. Their templates and
sentence pools are `data/expository.yaml`.
"""

from __future__ import annotations

import random

from .grammar import Grammar, cap, draw, lexicon, number, render_document, tidy
from .vocab import COMMON_RULES

_D = lexicon("expository")
NEWS_KINDS: tuple[dict[str, tuple[str, ...]], ...] = _D["news_kinds"]
NEWS_QUOTES: tuple[str, ...] = _D["news_quotes"]
NEWS_CLOSE: tuple[str, ...] = _D["news_close"]
ENTRY: dict[str, tuple[str, ...]] = _D["entry"]
# Explainers: a topic is a title and a pool of sentences; paragraphs draw from the pool.
EXPLAINERS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = _D["explainers"]
EXPLAIN_FRAMES: dict[str, tuple[str, ...]] = _D["explain_frames"]
# Reports: (opening paragraphs, follow-up paragraphs, things people say), one tuple per kind.
REPORTS: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = _D["reports"]


def _money(rng: random.Random) -> str:
    symbol = rng.choice("£$€")
    if rng.random() < 0.4:
        return f"{symbol}{rng.randint(12, 950)},000"
    return f"{symbol}{rng.randint(11, 95) / 10:g} million"


def _local_name(rng: random.Random) -> str:
    return (
        rng.choice(("locally ", "historically ", "formerly ", ""))
        + "known as "
        + rng.choice(("Old ", "Great ", "Little ", ""))
        + rng.choice(COMMON_RULES["surname"])
        + "ton"
    )


_NUMBERS = {
    "year": number(1850, 2023),
    "old_year": number(1086, 1850),
    "pop": lambda rng: f"{rng.randint(2, 180) * 100 + rng.randint(0, 99):,}",
    "pct": number(3, 68),
    "num": number(3, 40),
    "money": _money,
    "day": number(1, 28),
    "local_name": _local_name,
    "decade": lambda rng: str(rng.randint(195, 199) * 10),
    "rail_year": number(1838, 1912),
    "year2": number(2015, 2024),
    "num2": number(2, 6),
}
GRAMMAR = Grammar(COMMON_RULES, _D["rules"], _D["entry_rules"], _NUMBERS)


def _news(rng: random.Random, target: int) -> str:
    kind = NEWS_KINDS[rng.randrange(len(NEWS_KINDS))]
    bind = {k: GRAMMAR.pick(k, rng) for k in ("town", "body", "project", "river", "month")}
    bind.update((k, GRAMMAR.pick(k, rng)) for k in ("storm_kind", "business", "event", "animal_pl"))
    bind["storm_kind_cap"], bind["animal_pl_cap"] = cap(bind["storm_kind"]), cap(bind["animal_pl"])
    bind["say"], bind["say2"] = draw(rng, kind["say"], 2)
    g = lambda t: tidy(GRAMMAR(t, rng, bind))  # noqa: E731
    lede = g(rng.choice(kind["lede"]))
    style = rng.random()
    if style < 0.35:
        lede = f"{bind['town'].upper()}, {bind['month']} {rng.randint(1, 28)} - {lede}"
    elif style < 0.5:
        lede = f"{bind['town']} ({rng.choice(('Reuters', 'AP', 'staff', 'PA'))}) - {lede}"
    paras = [g(rng.choice(kind["head"]))] if rng.random() < 0.6 else []
    paras.append(lede)
    bodies = draw(rng, kind["body"], 5)
    quote = g(rng.choice(NEWS_QUOTES))
    while sum(map(len, paras)) < target - 120 and bodies:
        paras.append(g(bodies.pop()))
        if quote and (len(paras) >= 3 and rng.random() < 0.5 or not bodies):
            paras.append(quote)
            quote = ""
    paras.append(g(rng.choice(NEWS_CLOSE)))
    return "\n\n".join(paras)


def _entry(rng: random.Random, target: int) -> str:
    bind = {k: GRAMMAR.pick(k, rng) for k in ("town", "river", "kind", "industry_lc", "region")}
    bind["feature"], bind["feature2"] = (
        GRAMMAR(t, rng) for t in draw(rng, _D["rules"]["feature"], 2)
    )
    g = lambda t: tidy(GRAMMAR(t, rng, bind))  # noqa: E731
    headings = rng.random() < 0.5
    paras = [bind["town"]] if headings and rng.random() < 0.5 else []
    paras.append(g(rng.choice(ENTRY["lead"])))
    sections = ["history", "geography", "economy", "culture"]
    for name in sections:
        if sum(map(len, paras)) >= target:
            break
        body = " ".join(g(t) for t in draw(rng, ENTRY[name], rng.randint(1, 3)))
        paras.append(f"{name.capitalize()}\n\n{body}" if headings else body)
    return "\n\n".join(paras)


def _explainer(rng: random.Random, target: int) -> str:
    titles, facts = EXPLAINERS[rng.randrange(len(EXPLAINERS))]
    order = draw(rng, facts[1:], len(facts) - 1)
    paras = [rng.choice(titles)] if rng.random() < 0.7 else []
    first = [facts[0]]
    if paras and rng.random() < 0.5:  # an intro needs the title to refer to
        first.insert(0, rng.choice(EXPLAIN_FRAMES["intro"]))
    paras.append(" ".join(first))
    while order and sum(map(len, paras)) < target:
        k = rng.randint(1, 3)
        paras.append(" ".join(order[:k]))
        order = order[k:]
    if rng.random() < 0.5:
        paras.append(rng.choice(EXPLAIN_FRAMES["outro"]))
    return "\n\n".join(paras)


def _report(rng: random.Random, target: int) -> str:
    openings, follow_ups, says = REPORTS[rng.randrange(len(REPORTS))]
    bind = {k: GRAMMAR.pick(k, rng) for k in ("town", "institution", "body", "company")}
    bind["say"], bind["say2"] = draw(rng, says, 2)
    g = lambda t: tidy(GRAMMAR(t, rng, bind))  # noqa: E731
    paras = [g(rng.choice(openings))]
    more = draw(rng, follow_ups, 6)
    quotes = [g(rng.choice(NEWS_QUOTES))]
    while sum(map(len, paras)) < target and (more or quotes):
        pool = quotes if quotes and rng.random() < 0.3 else (more or quotes)
        paras.append(pool.pop() if pool is quotes else g(pool.pop()))
    return "\n\n".join(paras)


_FORMATS = (_news, _news, _news, _entry, _entry, _explainer, _report)


def make_expository(rng: random.Random) -> str:
    """One news story, reference entry, explainer or report, 450-2400 characters."""
    return render_document(rng, _FORMATS, median=850, high=2000, grow=300)
