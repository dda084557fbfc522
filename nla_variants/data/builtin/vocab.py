"""Shared vocabulary for the generated genres: people, places, times, things.

Why: every generated genre draws names, towns and everyday nouns from one place
(`data/vocab.yaml`), so stories, chats, news and tables talk about the same kind of world without
each module repeating lists. Town and street names are composed from parts, so there are thousands.
"""

from __future__ import annotations

import random

from .grammar import lexicon

_V = lexicon("vocab")
FEMALE: tuple[str, ...] = _V["female"]
MALE: tuple[str, ...] = _V["male"]
SURNAMES: tuple[str, ...] = _V["surname"]
CITIES: tuple[str, ...] = _V["city"]
WEEKDAYS: tuple[str, ...] = _V["weekday"]
MONTHS: tuple[str, ...] = _V["month"]
PRONOUNS: dict[str, dict[str, str]] = _V["pronouns"]


def first_name(rng: random.Random) -> str:
    return rng.choice(FEMALE if rng.random() < 0.5 else MALE)


def full_name(rng: random.Random) -> str:
    return f"{first_name(rng)} {rng.choice(SURNAMES)}"


def town(rng: random.Random) -> str:
    return rng.choice(_V["town_head"]) + rng.choice(_V["town_tail"])


def street(rng: random.Random) -> str:
    head = rng.choice(SURNAMES) if rng.random() < 0.4 else rng.choice(_V["town_head"])
    return f"{head} {rng.choice(_V['street_kind'])}"


def place(rng: random.Random) -> str:
    """A real city (for variety) or a composed town."""
    return rng.choice(CITIES) if rng.random() < 0.35 else town(rng)


def date_text(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1978, 2024)}"


def clock(rng: random.Random) -> str:
    minutes = ("00", "05", "10", "15", "20", "30", "40", "45", "50", "55")
    return f"{rng.randint(5, 22)}:{rng.choice(minutes)}"


def character(rng: random.Random, prefix: str = "", first_person: bool = False) -> dict[str, str]:
    """Bindings for one character: name, surname and pronoun slots, keys prefixed by `prefix`."""
    female = rng.random() < 0.5
    name = rng.choice(FEMALE if female else MALE)
    pron = PRONOUNS["I" if first_person else ("she" if female else "he")]
    out = {f"{prefix}{k}": v for k, v in pron.items()}
    out[f"{prefix}name"] = name
    out[f"{prefix}surname"] = rng.choice(SURNAMES)
    out[f"{prefix}Name"] = "I" if first_person else name
    return out


# Grammar rules every generated genre may use: the word lists plus the composing functions.
COMMON_RULES = {
    **{k: _V[k] for k in ("weekday", "month", "season", "colour", "occupation", "animal", "food")},
    **{k: _V[k] for k in ("country", "region", "city", "surname")},
    "town": town,
    "street": street,
    "place": place,
    "first_name": first_name,
    "full_name": full_name,
    "date": date_text,
    "clock": clock,
}
