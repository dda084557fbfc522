"""The false-statement set for auditing: paired true and false statements from templates
(capitals, arithmetic, the calendar). Each true statement has a false twin that differs in its
last word, so a reading can tell them apart only by what the model makes of the whole statement.
The target reads them as plain text; `nla audit --organism target` asks whether its residual at
the statement's last token holds truth (a probe) and whether the NLA says so.
"""

from __future__ import annotations

import random

# spellings a reading may use to state each value
TRUTH: dict[str, tuple[str, ...]] = {
    "true": ("true", "correct", "accurate"),
    "false": ("false", "wrong", "incorrect", "untrue", "mistaken"),
}

CAPITALS = {
    "France": "Paris",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Germany": "Berlin",
    "Japan": "Tokyo",
    "Egypt": "Cairo",
    "Russia": "Moscow",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Austria": "Vienna",
    "Ireland": "Dublin",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "China": "Beijing",
    "Thailand": "Bangkok",
}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _capitals(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for country, city in CAPITALS.items():
        wrong = rng.choice([c for k, c in CAPITALS.items() if k != country])
        out.append(
            (f"The capital of {country} is {city}.", f"The capital of {country} is {wrong}.")
        )
    return out


def _arithmetic(rng: random.Random, n: int) -> list[tuple[str, str]]:
    out = []
    for _ in range(n):
        a, b = rng.randint(2, 20), rng.randint(2, 20)
        wrong = a + b + rng.choice([-3, -2, -1, 1, 2, 3])
        out.append((f"{a} plus {b} equals {a + b}.", f"{a} plus {b} equals {wrong}."))
    return out


def _calendar(rng: random.Random) -> list[tuple[str, str]]:
    out = []
    for cycle, unit in ((MONTHS, "month"), (DAYS, "day")):
        for i, name in enumerate(cycle):
            right = cycle[(i + 1) % len(cycle)]
            wrong = rng.choice([c for c in cycle if c not in (name, right)])
            out.append(
                (f"The {unit} after {name} is {right}.", f"The {unit} after {name} is {wrong}.")
            )
    return out


def statement_pairs(seed: int = 0) -> list[tuple[str, str]]:
    """(true, false) statement pairs: 20 capitals, 20 sums, 19 calendar successions = 59 pairs."""
    rng = random.Random(f"statements-{seed}")
    return _capitals(rng) + _arithmetic(rng, 20) + _calendar(rng)


def statement_cases(seed: int = 0) -> list[dict[str, str]]:
    """The pairs as audit cases (`{"statement": ..., "value": "true" | "false"}`), twins adjacent."""
    return [
        case
        for true, false in statement_pairs(seed)
        for case in ({"statement": true, "value": "true"}, {"statement": false, "value": "false"})
    ]
