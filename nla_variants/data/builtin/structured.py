"""Generated structured text: CSV/TSV, markdown and fixed-width tables, JSON, inventories,
timetables, recipes, receipts, league tables and key-value records.

Why: pretraining data is full of records whose next token is predicted by column position and
schema rather than by prose; a probe for `structured` must see delimiters, aligned columns and
repeated keys. Tables draw a schema, a random subset and order of its columns and a header style,
so no two tables need begin alike. Word lists and recipe steps are
`data/structured.yaml`.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import random
import re
from collections.abc import Callable

from .grammar import lexicon, render_document
from .vocab import CITIES, MONTHS, SURNAMES, WEEKDAYS, first_name, full_name, street, town

Field = Callable[[random.Random], object]

_D = lexicon("structured")  # word lists; recipe steps name the ingredient groups they need


def _price(rng: random.Random) -> str:
    return f"{rng.randint(1, 240)}.{rng.choice((0, 49, 50, 95, 99, rng.randint(0, 99))):02d}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2015, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(5, 23):02d}:{rng.randrange(0, 60, 5):02d}"


def _person_email(rng: random.Random) -> str:
    name = f"{first_name(rng)}.{rng.choice(SURNAMES)}".lower()
    return f"{name}@{rng.choice(_D['email_domain'])}"


# Value generators the specs name, besides `int`, `real`, `bool`, `pick` (a word list of the same
# file) and the value templates of `data/structured.yaml`.
_NAMED: dict[str, Field] = {
    "first_name": first_name,
    "full_name": full_name,
    "surname": lambda r: r.choice(SURNAMES),
    "city": lambda r: r.choice(CITIES),
    "city_or_town": lambda r: r.choice(CITIES) if r.random() < 0.5 else town(r),
    "town": town,
    "street": street,
    "month": lambda r: r.choice(MONTHS),
    "weekday": lambda r: r.choice(WEEKDAYS),
    "email": _person_email,
    "date": _date,
    "time": _time,
    "price": _price,
    "rain_mm": lambda r: round(max(0.0, r.gauss(2, 5)), 1),
}
_SLOT = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}")


@functools.cache
def _field(spec: str) -> Field:
    """A value generator from a spec: `int LO HI`, `real LO HI [DIGITS]`, `bool P`, `pick LIST`,
    a value template's name or a name in `_NAMED`."""
    kind, *args = spec.split()
    if kind == "int":
        lo, hi = map(int, args)
        return lambda r: r.randint(lo, hi)
    if kind == "real":
        low, high, digits = float(args[0]), float(args[1]), args[2:]
        if not digits:
            return lambda r: r.uniform(low, high)
        return lambda r: round(r.uniform(low, high), int(digits[0]))
    if kind == "bool":
        p = float(args[0])
        return lambda r: r.random() < p
    if kind == "pick":
        words = _D[args[0]]
        return lambda r: r.choice(words)
    if kind in _D["templates"]:
        return functools.partial(_fill, _D["templates"][kind])
    return _NAMED[kind]


def _fill(template: str, rng: random.Random, **bind: str) -> str:
    """Fill the `{spec}` / `{spec:format}` slots of a value template, left to right; a binding
    takes precedence over a spec."""

    def value(m: re.Match[str]) -> str:
        spec = m.group(1)
        return format(bind[spec] if spec in bind else _field(spec)(rng), m.group(2) or "")

    return _SLOT.sub(value, template)


def _one_of(rng: random.Random, key: str, **bind: str) -> str:
    """Every template of the list `key` filled, then one of them chosen."""
    return rng.choice([_fill(t, rng, **bind) for t in _D[key]])


# Each schema: column name -> value generator. The first column is the natural key.
SCHEMAS: dict[str, dict[str, Field]] = {
    name: {col: _field(spec) for col, spec in cols.items()} for name, cols in _D["schemas"].items()
}


def _header(name: str, style: int) -> str:
    if style == 0:
        return name
    words = name.split("_")
    if style == 1:
        return " ".join(w.capitalize() for w in words)
    if style == 2:
        return words[0] + "".join(w.capitalize() for w in words[1:])
    return name.upper()


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _pick_table(
    rng: random.Random, target: int
) -> tuple[str, list[str], list[str], list[list[object]]]:
    """(schema name, column keys, header labels, rows) sized so the rendering nears `target`."""
    schema = rng.choice(sorted(SCHEMAS))
    fields = SCHEMAS[schema]
    names = list(fields)
    key, rest = names[0], names[1:]
    cols = rng.sample(rest, rng.randint(min(3, len(rest)), len(rest)))
    if rng.random() < 0.75:
        cols.insert(0, key)
    style = rng.randrange(4)
    header = [_header(c, style) for c in cols]
    rows: list[list[object]] = []
    size = 0
    while size < target or len(rows) < 4:
        row = [fields[c](rng) for c in cols]
        rows.append(row)
        size += sum(len(_cell(v)) + 3 for v in row)
    return schema, cols, header, rows


def _title(rng: random.Random, schema: str) -> str:
    return rng.choice(_D["table_titles"][schema]) + _one_of(rng, "title_extras")


def _csv(rng: random.Random, target: int) -> str:
    schema, _, header, rows = _pick_table(rng, target)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=rng.choice(_D["csv_delimiters"]), lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    text = buf.getvalue()
    return f"# {_title(rng, schema)}\n{text}" if rng.random() < 0.25 else text


def _markdown(rng: random.Random, target: int) -> str:
    schema, _, header, rows = _pick_table(rng, target)
    lines = [f"{rng.choice(_D['markdown_title'])}{_title(rng, schema)}".rstrip(), ""]
    if lines[0].startswith("**"):
        lines[0] += "**"
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    if rng.random() < 0.3:
        lines += ["", f"Total rows: {len(rows)}."]
    return "\n".join(lines)


def _fixed_width(rng: random.Random, target: int) -> str:
    schema, _, header, rows = _pick_table(rng, target)
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in cells[1:]]
    if rng.random() < 0.5:
        lines = [_title(rng, schema).upper(), ""] + lines
    return "\n".join(lines)


def _json(rng: random.Random, target: int) -> str:
    schema, cols, header, rows = _pick_table(rng, int(target * 0.6))
    keys = header if rng.random() < 0.5 else cols
    records = [dict(zip(keys, row, strict=True)) for row in rows]
    indent = rng.choice((2, 4))
    while len(records) > 3 and len(json.dumps(records, indent=indent)) > 1.3 * target:
        records = records[: len(records) * 3 // 4]
    shape = rng.random()
    if shape < 0.35:
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in records)
    if shape < 0.7:
        return json.dumps(records, indent=indent, ensure_ascii=False)
    wrapper = {
        rng.choice(_D["json_data_key"]): records,
        "count": len(records),
        rng.choice(_D["json_source_key"]): schema,
        "generated": _date(rng),
    }
    if rng.random() < 0.5:
        wrapper = dict(reversed(list(wrapper.items())))
    return json.dumps(wrapper, indent=2, ensure_ascii=False)


def _inventory(rng: random.Random, target: int) -> str:
    place = rng.choice(_D["inventory_place"])
    lines = [_one_of(rng, "inventory_head", place=place, place_lower=place.lower()), ""]
    style, lower = rng.randrange(3), rng.random() < 0.5
    while sum(map(len, lines)) < target:
        item = (
            f"{rng.choice(_D['adj'])} {rng.choice(_D['product'])}"
            if rng.random() < 0.5
            else rng.choice(_D["product"])
        )
        item = item.lower() if lower else item
        qty, shelf = rng.randint(0, 120), f"{rng.choice('ABCDEFG')}{rng.randint(1, 24)}"
        if style == 0:
            lines.append(f"- {qty} x {item} (shelf {shelf})")
        elif style == 1:
            lines.append(f"{shelf:<5}{item:<34}{qty:>5}")
        else:
            lines.append(f"{item}: {qty}" + (" [reorder]" if qty < 10 else ""))
    return "\n".join(lines)


def _timetable(rng: random.Random, target: int) -> str:
    stops = [town(rng) for _ in range(rng.randint(5, 9))]
    if rng.random() < 0.4:
        stops[rng.randrange(len(stops))] = f"{rng.choice(CITIES)} Central"
    runs = max(3, min(10, target // (len(stops) * 9)))
    first = rng.randint(5 * 60, 9 * 60)
    every = rng.choice(_D["route_every"])
    gaps = [rng.randint(3, 14) for _ in stops]
    head = _fill(_D["route_head"], rng, first=stops[0], last=stops[-1])
    days = rng.choice(_D["route_days"])
    width = max(map(len, stops)) + 2
    sep = rng.choice(_D["route_sep"])
    lines = [head, days, ""]
    for i, stop in enumerate(stops):
        times = []
        for run in range(runs):
            t = first + run * every + sum(gaps[:i])
            times.append(f"{t // 60 % 24:02d}{sep}{t % 60:02d}")
        lines.append(f"{stop:<{width}}" + "  ".join(times))
    if rng.random() < 0.5:
        lines += ["", _one_of(rng, "route_note")]
    return "\n".join(lines)


def _singular(noun: str) -> str:
    words = noun.split()
    i = 0 if len(words) > 2 and words[1] == "of" else len(words) - 1
    words[i] = "leaf" if words[i] == "leaves" else words[i].removesuffix("s")
    return " ".join(words)


def _recipe(rng: random.Random, target: int) -> str:
    groups = {
        "w": rng.sample(_D["weighed"], rng.randint(1, 3)),
        "p": rng.sample(_D["poured"], rng.randint(0, 2)),
        "c": rng.sample(_D["counted"], rng.randint(1, 4)),
        "s": rng.sample(_D["spooned"], rng.randint(1, 3)),
        "t": rng.sample(_D["taste"], rng.randint(1, 2)),
    }
    title = f"{rng.choice(_D['dish_a'])} {rng.choice(_D['dish_b'])}"
    lines = [
        title,
        "",
        f"Serves {rng.randint(2, 8)}. Prep {rng.randint(1, 6) * 5} min, "
        f"cook {rng.randint(2, 12) * 5} min.",
        "",
        rng.choice(_D["ingredients_heading"]),
    ]
    lines += [f"- {rng.choice(_D['grams'])}g {x}" for x in groups["w"]]
    lines += [f"- {rng.choice(_D['millilitres'])}ml {x}" for x in groups["p"]]
    for x in groups["c"]:
        k = rng.randint(1, 4)
        lines.append(f"- {k} {x if k > 1 else _singular(x)}")
    lines += [f"- {rng.randint(1, 3)} {rng.choice(_D['spoons'])} {x}" for x in groups["s"]]
    lines += [f"- {x}, to taste" for x in groups["t"]]
    lines += ["", rng.choice(_D["method_heading"])]
    n = 0
    for needs, step in _D["steps"]:
        if all(groups[g] for g in needs) and rng.random() < 0.8:
            n += 1
            picks = {
                g: " and ".join(rng.sample(v, min(len(v), 2 if g in "ct" else 1)))
                for g, v in groups.items()
                if v
            }
            slots = {"n": rng.randint(2, 9), "temp": rng.choice(_D["oven"])}
            lines.append(f"{n}. " + step.format(**slots, **picks))
    if rng.random() < 0.4:
        lines += ["", rng.choice(_D["recipe_tip"])]
    return "\n".join(lines)


def _receipt(rng: random.Random, target: int) -> str:
    shop = f"{rng.choice(SURNAMES).upper()} {rng.choice(_D['shop_kind'])}"
    lines = [
        shop,
        f"{rng.randint(1, 200)} {street(rng)}, {town(rng)}",
        f"{_date(rng)} {_time(rng)}  till {rng.randint(1, 9)}",
        "",
    ]
    total = 0
    while sum(map(len, lines)) < target - 120:
        qty, pence = rng.randint(1, 4), rng.randint(49, 4999)
        name = rng.choice(_D["product"] + _D["weighed"] + _D["counted"]).upper()[:24]
        total += qty * pence
        lines.append(f"{qty} {name:<24} {qty * pence / 100:>8.2f}")
    vat = total * 0.2 / 1.2
    lines += [
        "-" * 36,
        f"{'SUBTOTAL':<27}{total / 100:>9.2f}",
        f"{'VAT incl.':<27}{vat / 100:>9.2f}",
        f"{'TOTAL':<27}{total / 100:>9.2f}",
        rng.choice(_D["payment"]),
        "",
        rng.choice(_D["receipt_footer"]),
    ]
    return "\n".join(lines)


def _league(rng: random.Random, target: int) -> str:
    teams = [f"{town(rng)} {rng.choice(_D['team_suffix'])}" for _ in range(rng.randint(8, 16))]
    played = rng.randint(6, 30)
    table = []
    for team in teams:
        w = rng.randint(0, played)
        d = rng.randint(0, played - w)
        lost = played - w - d
        gf, ga = rng.randint(w, w * 3 + d + 5), rng.randint(lost, lost * 3 + d + 5)
        table.append((3 * w + d, gf - ga, gf, team, w, d, lost, ga))
    table.sort(key=lambda t: (-t[0], -t[1], -t[2], t[3]))
    width = max(map(len, teams)) + 1
    lines = [
        f"{rng.choice(_D['league_kind'])} {rng.choice(_D['league_name'])} "
        f"standings after {played} games",
        "",
        f"{'Pos':<4}{'Team':<{width}} P   W   D   L   GF  GA  GD   Pts",
    ]
    for pos, (pts, gd, gf, team, w, d, lost, ga) in enumerate(table, 1):
        lines.append(
            f"{pos:<4}{team:<{width}}{played:<4}{w:<4}{d:<4}{lost:<4}{gf:<4}{ga:<4}{gd:<+5}{pts}"
        )
    return "\n".join(lines)


def _records(rng: random.Random, target: int) -> str:
    kind = rng.choice(_D["records"])
    sep = rng.choice(_D["record_seps"])
    blocks = []
    while sum(map(len, blocks)) < target:
        pairs = [(label, _fill(value, rng)) for label, value in kind]
        if rng.random() < 0.3:
            rng.shuffle(pairs)
        blocks.append("\n".join(f"{k}{sep}{v}" for k, v in pairs if v))
    return "\n\n".join(blocks)


FORMATS: tuple[tuple[Callable[[random.Random, int], str], int], ...] = (
    (_csv, 4),
    (_markdown, 3),
    (_fixed_width, 2),
    (_json, 3),
    (_inventory, 2),
    (_timetable, 2),
    (_recipe, 3),
    (_receipt, 2),
    (_league, 1),
    (_records, 2),
)
_CHOICES = tuple(f for f, w in FORMATS for _ in range(w))


def make_structured(rng: random.Random) -> str:
    """One table, record set, list or recipe, 450-2600 characters."""
    return render_document(rng, _CHOICES, median=800, high=2200, grow=300)
