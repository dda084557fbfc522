"""Generated structured text: CSV/TSV, markdown and fixed-width tables, JSON, inventories,
timetables, recipes, receipts, league tables and key-value records.

Why: pretraining data is full of records whose next token is predicted by column position and
schema rather than by prose; a probe for `structured` must see delimiters, aligned columns and
repeated keys. Tables draw a schema, a random subset and order of its columns and a header style,
so no two tables need begin alike.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable

from .grammar import P, W, render_document
from .vocab import CITIES, MONTHS, SURNAMES, WEEKDAYS, first_name, street, town

Field = Callable[[random.Random], object]

_ADJ = W("Classic Compact Deluxe Heavy-Duty Eco Mini Pro Smart Standard Premium Folding Portable")
_PRODUCT = P(
    """Desk Lamp|Hex Bolt M6|Ceramic Mug|Garden Hose|Cordless Drill|Notebook A5|Kettle|Door Hinge|
    Bike Pump|Water Bottle|Extension Lead|Paint Roller|Storage Box|Cutting Board|LED Bulb|
    Wool Blanket|Tape Measure|Phone Charger|Coffee Grinder|Padlock"""
)
_CATEGORY = W("Hardware Kitchen Garden Electrical Stationery Outdoor Homeware Tools Lighting")
_CONDITIONS = P("sunny|cloudy|light rain|heavy rain|showers|fog|snow|windy|clear|overcast")
_GENRE = P("mystery|history|poetry|science|cookery|travel|fantasy|biography|romance|crime")
_TITLE_A = W("Silent Northern Hidden Last Broken Golden Winter Distant Little Paper Salt Iron")
_TITLE_B = W("Harbour Garden Letters River Kingdom Orchard Lantern Atlas Voyage Clock Island")
_STATUS = P("on time|delayed|boarding|departed|cancelled|gate closed|landed")
# Ingredients by how a recipe measures them.
_WEIGHED = P(
    """plain flour|butter|red lentils|basmati rice|potatoes|spinach|cheddar|chicken thighs|oats|
    mushrooms|caster sugar|white fish|dried pasta|ground almonds|yoghurt|frozen peas"""
)
_POURED = P("milk|vegetable stock|double cream|chicken stock|water|coconut milk|passata")
_COUNTED = P(
    """onions|garlic cloves|carrots|celery sticks|lemons|leeks|tins of chickpeas|
    tins of chopped tomatoes|bay leaves|red peppers|courgettes"""
)
_SPOONED = P(
    """ground cumin|smoked paprika|baking powder|ground cinnamon|honey|soy sauce|olive oil|
    dried thyme|tomato puree|mustard|ground ginger|vinegar"""
)
_TASTE = P("salt|black pepper|fresh parsley|chopped coriander|grated nutmeg|chilli flakes")
_DISH_A = W("Smoky Creamy Spiced Lemon Garlic Herby Rustic Quick Slow-Cooked Golden Crispy")
_DISH_B = P(
    """Lentil Stew|Chicken Traybake|Leek Pie|Tomato Soup|Mushroom Risotto|Bean Chilli|Flatbreads|
    Apple Crumble|Fish Cakes|Potato Gratin|Chickpea Curry|Oat Biscuits|Spinach Dhal|Banana Loaf"""
)
# Method steps: which ingredient groups they need (w weighed, p poured, c counted, s spooned).
_STEPS = (
    ("", "Preheat the oven to {temp} degrees."),
    ("c", "Finely chop the {c}."),
    ("", "Heat a splash of oil in a large pan over a medium heat."),
    ("c", "Add the {c} and cook for {n} minutes, stirring often, until soft."),
    ("s", "Stir in the {s} and cook for another minute."),
    ("p", "Pour in the {p}, bring to the boil, then turn down to a simmer."),
    ("w", "Add the {w} and cook for {n}0 minutes, until tender."),
    ("ws", "Mix the {w} and {s} together in a bowl."),
    ("", "Cover and leave to rest for {n} minutes."),
    ("", "Transfer to a baking dish and bake for {n}0 minutes until golden."),
    ("t", "Season with {t} and serve."),
    ("", "Leave to cool for {n} minutes before serving."),
)


def _price(rng: random.Random) -> str:
    return f"{rng.randint(1, 240)}.{rng.choice((0, 49, 50, 95, 99, rng.randint(0, 99))):02d}"


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2015, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(5, 23):02d}:{rng.randrange(0, 60, 5):02d}"


def _person_email(rng: random.Random) -> str:
    name = f"{first_name(rng)}.{rng.choice(SURNAMES)}".lower()
    return f"{name}@{rng.choice(('example.com', 'mail.test', 'post.example', 'inbox.test'))}"


def _phone(rng: random.Random) -> str:
    return f"0{rng.randint(1000, 9999)} {rng.randint(100000, 999999)}"


def _book_title(rng: random.Random) -> str:
    return f"The {rng.choice(_TITLE_A)} {rng.choice(_TITLE_B)}"


# Each schema: column name -> value generator. The first column is the natural key.
SCHEMAS: dict[str, dict[str, Field]] = {
    "people": {
        "id": lambda r: r.randint(1000, 99999),
        "first_name": first_name,
        "last_name": lambda r: r.choice(SURNAMES),
        "email": _person_email,
        "city": lambda r: r.choice(CITIES) if r.random() < 0.5 else town(r),
        "age": lambda r: r.randint(18, 90),
        "joined": _date,
        "phone": _phone,
        "active": lambda r: r.random() < 0.8,
    },
    "products": {
        "sku": lambda r: f"{r.choice('ABCDHKMPT')}{r.choice('ABCDHKMPT')}-{r.randint(100, 9999)}",
        "name": lambda r: f"{r.choice(_ADJ)} {r.choice(_PRODUCT)}",
        "category": lambda r: r.choice(_CATEGORY),
        "price": _price,
        "stock": lambda r: r.randint(0, 500),
        "supplier": lambda r: (
            f"{r.choice(SURNAMES)} {r.choice(('Ltd', 'Supplies', '& Co', 'Trading'))}"
        ),
        "weight_kg": lambda r: round(r.uniform(0.05, 12), 2),
    },
    "weather": {
        "date": _date,
        "station": lambda r: town(r),
        "temp_min": lambda r: round(r.uniform(-8, 14), 1),
        "temp_max": lambda r: round(r.uniform(4, 33), 1),
        "rain_mm": lambda r: round(max(0.0, r.gauss(2, 5)), 1),
        "wind_kmh": lambda r: r.randint(0, 85),
        "conditions": lambda r: r.choice(_CONDITIONS),
    },
    "orders": {
        "order_id": lambda r: f"ORD-{r.randint(100000, 999999)}",
        "date": _date,
        "customer": lambda r: f"{first_name(r)} {r.choice(SURNAMES)}",
        "item": lambda r: r.choice(_PRODUCT),
        "qty": lambda r: r.randint(1, 24),
        "unit_price": _price,
        "region": lambda r: r.choice(("North", "South", "East", "West", "Central")),
        "paid": lambda r: r.random() < 0.9,
    },
    "books": {
        "isbn": lambda r: (
            f"978-{r.randint(0, 9)}-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}-{r.randint(0, 9)}"
        ),
        "title": _book_title,
        "author": lambda r: f"{first_name(r)} {r.choice(SURNAMES)}",
        "year": lambda r: r.randint(1925, 2024),
        "pages": lambda r: r.randint(96, 880),
        "genre": lambda r: r.choice(_GENRE),
        "rating": lambda r: round(r.uniform(2.5, 5.0), 1),
    },
    "flights": {
        "flight": lambda r: (
            f"{r.choice(('NX', 'TP', 'AZ', 'KL', 'SK', 'EI', 'LO'))}{r.randint(100, 9999)}"
        ),
        "origin": lambda r: r.choice(CITIES),
        "destination": lambda r: r.choice(CITIES),
        "departs": _time,
        "arrives": _time,
        "gate": lambda r: f"{r.choice('ABCDE')}{r.randint(1, 40)}",
        "status": lambda r: r.choice(_STATUS),
    },
    "sensors": {
        "timestamp": lambda r: f"{_date(r)}T{_time(r)}:{r.randint(0, 59):02d}Z",
        "sensor_id": lambda r: f"s-{r.randint(1, 64):03d}",
        "temperature": lambda r: round(r.uniform(15, 29), 2),
        "humidity": lambda r: round(r.uniform(25, 95), 1),
        "battery": lambda r: round(r.uniform(2.9, 4.2), 2),
        "ok": lambda r: r.random() < 0.95,
    },
    "grades": {
        "student": lambda r: f"{first_name(r)} {r.choice(SURNAMES)[0]}.",
        "class": lambda r: f"{r.randint(7, 13)}{r.choice('ABCDE')}",
        "maths": lambda r: r.randint(22, 100),
        "english": lambda r: r.randint(22, 100),
        "science": lambda r: r.randint(22, 100),
        "attendance_pct": lambda r: round(r.uniform(70, 100), 1),
    },
}

TABLE_TITLES = {
    "people": P(
        "Members list|Customer records|Volunteer rota contacts|Staff directory|Registrations"
    ),
    "products": P("Product catalogue|Stock report|Price list|Warehouse items|Reorder sheet"),
    "weather": P("Daily observations|Weather log|Station readings|Monthly climate summary"),
    "orders": P("Orders export|Sales ledger|Open orders|Order history|Invoices issued"),
    "books": P("Library acquisitions|Reading list|Catalogue extract|Book inventory"),
    "flights": P("Departures|Arrivals board|Flight schedule|Today's flights"),
    "sensors": P("Sensor readings|Telemetry dump|Greenhouse monitor log|Data logger export"),
    "grades": P("Term results|Assessment scores|Class report|Exam marks"),
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
    title = rng.choice(TABLE_TITLES[schema])
    extra = rng.choice(
        (
            "",
            f" - {town(rng)}",
            f", {rng.choice(MONTHS)} {rng.randint(2015, 2024)}",
            f" (updated {_date(rng)})",
            f" #{rng.randint(2, 40)}",
        )
    )
    return title + extra


def _csv(rng: random.Random, target: int) -> str:
    schema, _, header, rows = _pick_table(rng, target)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=rng.choice((",", ",", ";", "\t", "|")), lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_cell(v) for v in row] for row in rows])
    text = buf.getvalue()
    return f"# {_title(rng, schema)}\n{text}" if rng.random() < 0.25 else text


def _markdown(rng: random.Random, target: int) -> str:
    schema, _, header, rows = _pick_table(rng, target)
    lines = [f"{rng.choice(('## ', '### ', '**', ''))}{_title(rng, schema)}".rstrip(), ""]
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
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
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
        rng.choice(("data", "items", "results", "records")): records,
        "count": len(records),
        rng.choice(("source", "dataset", "table")): schema,
        "generated": _date(rng),
    }
    if rng.random() < 0.5:
        wrapper = dict(reversed(list(wrapper.items())))
    return json.dumps(wrapper, indent=2, ensure_ascii=False)


def _inventory(rng: random.Random, target: int) -> str:
    place = rng.choice(("Warehouse", "Store room", "Workshop", "Van", "Shed", "Stockroom"))
    lines = [
        rng.choice(
            (
                f"INVENTORY: {place} {rng.randint(1, 12)}",
                f"{place} stock check, {_date(rng)}",
                f"{town(rng)} {place.lower()} - inventory",
                f"Items in {place.lower()} ({street(rng)})",
            )
        ),
        "",
    ]
    style, lower = rng.randrange(3), rng.random() < 0.5
    while sum(map(len, lines)) < target:
        item = (
            f"{rng.choice(_ADJ)} {rng.choice(_PRODUCT)}"
            if rng.random() < 0.5
            else rng.choice(_PRODUCT)
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
    every = rng.choice((15, 20, 30, 45, 60, 90, 120))
    gaps = [rng.randint(3, 14) for _ in stops]
    kind = rng.choice(("Route", "Line", "Service", "Bus", "Train"))
    head = f"{kind} {rng.randint(1, 99)}{rng.choice(('', '', 'A', 'X'))}: {stops[0]} - {stops[-1]}"
    days = rng.choice(
        ("Monday to Friday", "Saturdays", "Sundays and public holidays", "Daily", "Weekdays")
    )
    width = max(map(len, stops)) + 2
    sep = rng.choice((":", ":", "."))
    lines = [head, days, ""]
    for i, stop in enumerate(stops):
        times = []
        for run in range(runs):
            t = first + run * every + sum(gaps[:i])
            times.append(f"{t // 60 % 24:02d}{sep}{t % 60:02d}")
        lines.append(f"{stop:<{width}}" + "  ".join(times))
    if rng.random() < 0.5:
        lines += [
            "",
            rng.choice(
                (
                    "Times are approximate.",
                    "Request stops are not shown.",
                    f"No service on {rng.choice(WEEKDAYS)}s in {rng.choice(MONTHS)}.",
                    "Connections are not guaranteed.",
                )
            ),
        ]
    return "\n".join(lines)


def _singular(noun: str) -> str:
    words = noun.split()
    i = 0 if len(words) > 2 and words[1] == "of" else len(words) - 1
    words[i] = "leaf" if words[i] == "leaves" else words[i].removesuffix("s")
    return " ".join(words)


def _recipe(rng: random.Random, target: int) -> str:
    groups = {
        "w": rng.sample(_WEIGHED, rng.randint(1, 3)),
        "p": rng.sample(_POURED, rng.randint(0, 2)),
        "c": rng.sample(_COUNTED, rng.randint(1, 4)),
        "s": rng.sample(_SPOONED, rng.randint(1, 3)),
        "t": rng.sample(_TASTE, rng.randint(1, 2)),
    }
    title = f"{rng.choice(_DISH_A)} {rng.choice(_DISH_B)}"
    lines = [
        title,
        "",
        f"Serves {rng.randint(2, 8)}. Prep {rng.randint(1, 6) * 5} min, "
        f"cook {rng.randint(2, 12) * 5} min.",
        "",
        rng.choice(("Ingredients", "INGREDIENTS", "You will need:")),
    ]
    lines += [f"- {rng.choice((50, 100, 150, 200, 250, 300, 400, 500))}g {x}" for x in groups["w"]]
    lines += [f"- {rng.choice((100, 150, 200, 250, 400, 500, 750))}ml {x}" for x in groups["p"]]
    for x in groups["c"]:
        k = rng.randint(1, 4)
        lines.append(f"- {k} {x if k > 1 else _singular(x)}")
    lines += [f"- {rng.randint(1, 3)} {rng.choice(('tsp', 'tbsp'))} {x}" for x in groups["s"]]
    lines += [f"- {x}, to taste" for x in groups["t"]]
    lines += ["", rng.choice(("Method", "METHOD", "Steps", "How to make it"))]
    n = 0
    for needs, step in _STEPS:
        if all(groups[g] for g in needs) and rng.random() < 0.8:
            n += 1
            picks = {
                g: " and ".join(rng.sample(v, min(len(v), 2 if g in "ct" else 1)))
                for g, v in groups.items()
                if v
            }
            lines.append(
                f"{n}. "
                + step.format(
                    n=rng.randint(2, 9), temp=rng.choice((160, 180, 190, 200, 220)), **picks
                )
            )
    if rng.random() < 0.4:
        lines += [
            "",
            rng.choice(
                (
                    "Keeps for three days in the fridge.",
                    "Freezes well.",
                    "Tip: make it a day ahead for the best flavour.",
                    "Adapted from a family recipe.",
                )
            ),
        ]
    return "\n".join(lines)


def _receipt(rng: random.Random, target: int) -> str:
    shop = f"{rng.choice(SURNAMES).upper()} {rng.choice(('STORES', 'HARDWARE', 'MARKET', 'DELI', 'PHARMACY'))}"
    lines = [
        shop,
        f"{rng.randint(1, 200)} {street(rng)}, {town(rng)}",
        f"{_date(rng)} {_time(rng)}  till {rng.randint(1, 9)}",
        "",
    ]
    total = 0
    while sum(map(len, lines)) < target - 120:
        qty, pence = rng.randint(1, 4), rng.randint(49, 4999)
        name = rng.choice(_PRODUCT + _WEIGHED + _COUNTED).upper()[:24]
        total += qty * pence
        lines.append(f"{qty} {name:<24} {qty * pence / 100:>8.2f}")
    vat = total * 0.2 / 1.2
    lines += [
        "-" * 36,
        f"{'SUBTOTAL':<27}{total / 100:>9.2f}",
        f"{'VAT incl.':<27}{vat / 100:>9.2f}",
        f"{'TOTAL':<27}{total / 100:>9.2f}",
        f"{rng.choice(('CARD', 'CASH', 'CONTACTLESS'))}",
        "",
        rng.choice(
            (
                "Thank you for shopping with us",
                "Please keep your receipt",
                "No refund without receipt",
            )
        ),
    ]
    return "\n".join(lines)


def _league(rng: random.Random, target: int) -> str:
    teams = [
        f"{town(rng)} {rng.choice(('United', 'Rovers', 'Athletic', 'Town', 'Wanderers', 'Albion'))}"
        for _ in range(rng.randint(8, 16))
    ]
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
        f"{rng.choice(('Division', 'League', 'Group'))} {rng.choice(('One', 'Two', 'A', 'B', 'North', 'South'))} "
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
    kind = rng.randrange(3)
    sep = rng.choice((": ", ": ", " = ", "\t"))
    blocks = []
    while sum(map(len, blocks)) < target:
        if kind == 0:
            pairs = [
                ("Name", f"{first_name(rng)} {rng.choice(SURNAMES)}"),
                ("Phone", _phone(rng)),
                ("Email", _person_email(rng)),
                ("Address", f"{rng.randint(1, 250)} {street(rng)}, {town(rng)}"),
                ("Birthday", f"{rng.randint(1, 28)} {rng.choice(MONTHS)}"),
                (
                    "Notes",
                    rng.choice(
                        (
                            "prefers email",
                            "allergic to nuts",
                            "call after 6pm",
                            "",
                            "met at the fair",
                        )
                    ),
                ),
            ]
        elif kind == 1:
            pairs = [
                ("Property", f"{rng.randint(1, 120)} {street(rng)}"),
                ("Town", town(rng)),
                (
                    "Type",
                    rng.choice(("flat", "terraced house", "cottage", "semi-detached", "bungalow")),
                ),
                ("Bedrooms", str(rng.randint(1, 5))),
                ("Price", f"£{rng.randint(90, 900) * 1000:,}"),
                ("Garden", rng.choice(("yes", "no", "shared"))),
                ("EPC", rng.choice("ABCDEFG")),
            ]
        else:
            pairs = [
                ("Sample", f"{rng.choice('ABCDEFGH')}{rng.randint(1, 96):02d}"),
                ("Collected", _date(rng)),
                ("Site", town(rng)),
                ("pH", f"{rng.uniform(5.5, 8.5):.2f}"),
                ("Nitrate_mg_l", f"{rng.uniform(0.1, 40):.1f}"),
                ("Analyst", f"{first_name(rng)[0]}. {rng.choice(SURNAMES)}"),
            ]
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
