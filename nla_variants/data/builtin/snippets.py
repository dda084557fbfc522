"""Generated Python modules: dataclasses, loaders, aggregations, repositories, CLIs and tests.

Why: the code genre is mostly real stdlib source, but the stdlib is old-fashioned, library-style
code; these small application-style modules (type hints, dataclasses, argparse, pytest) widen the
genre and keep it non-empty on an install without stdlib sources. Every module parses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .grammar import target_length


@dataclass(frozen=True)
class Entity:
    name: str  # snake_case singular
    plural: str
    key: tuple[str, str]  # (field, type)
    text: tuple[str, str]
    number: tuple[str, str]
    flag: str
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def cls(self) -> str:
        return "".join(w.capitalize() for w in self.name.split("_"))

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        return (self.key, self.text, self.number, (self.flag, "bool"), *self.extra)


ENTITIES = (
    Entity(
        "order",
        "orders",
        ("order_id", "int"),
        ("customer", "str"),
        ("total", "float"),
        "paid",
        (("created", "str"),),
    ),
    Entity(
        "reading", "readings", ("sensor_id", "str"), ("unit", "str"), ("value", "float"), "valid"
    ),
    Entity(
        "book",
        "books",
        ("isbn", "str"),
        ("title", "str"),
        ("pages", "int"),
        "available",
        (("author", "str"),),
    ),
    Entity(
        "ticket", "tickets", ("ticket_id", "int"), ("subject", "str"), ("priority", "int"), "closed"
    ),
    Entity(
        "shipment",
        "shipments",
        ("tracking_code", "str"),
        ("destination", "str"),
        ("weight_kg", "float"),
        "delivered",
    ),
    Entity(
        "invoice",
        "invoices",
        ("number", "str"),
        ("client", "str"),
        ("amount", "float"),
        "settled",
        (("due", "str"),),
    ),
    Entity(
        "employee",
        "employees",
        ("staff_id", "int"),
        ("department", "str"),
        ("salary", "float"),
        "active",
        (("name", "str"),),
    ),
    Entity(
        "track", "tracks", ("track_id", "int"), ("artist", "str"), ("duration_s", "int"), "explicit"
    ),
    Entity("task", "tasks", ("task_id", "int"), ("owner", "str"), ("estimate_h", "float"), "done"),
    Entity(
        "station", "stations", ("code", "str"), ("region", "str"), ("elevation_m", "int"), "staffed"
    ),
)

_CONVERT = {"int": "int", "float": "float", "str": "str", "bool": "_parse_bool"}


def _dataclass(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    fields = "\n".join(f"    {n}: {t}" for n, t in e.fields)
    row = ",\n".join(f'            {n}={_CONVERT[t]}(row["{n}"])' for n, t in e.fields)
    frozen = "(frozen=True)" if rng.random() < 0.5 else ""
    doc = rng.choice(
        (
            f"One {e.name.replace('_', ' ')} as stored in the export.",
            f"A single {e.name.replace('_', ' ')} record.",
            f"In-memory representation of a {e.name.replace('_', ' ')}.",
        )
    )
    code = f'''def _parse_bool(value: str) -> bool:
    return value.strip().lower() in {{"1", "true", "yes", "y"}}


@dataclass{frozen}
class {e.cls}:
    """{doc}"""

{fields}

    @classmethod
    def from_row(cls, row: dict[str, str]) -> {e.cls}:
        return cls(
{row},
        )
'''
    return {"from dataclasses import dataclass"}, code


def _loader(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    delim = rng.choice((",", ";", "\\t"))
    doc = rng.choice(
        (
            f"Read {e.plural} from a CSV file with a header row; skip rows that fail to parse.",
            f"Parse a {delim!r}-separated export of {e.plural}. Bad rows are logged, not raised.",
            f"All {e.plural} in `path`, in file order.",
        )
    )
    code = f'''def load_{e.plural}(path: str | Path) -> list[{e.cls}]:
    """{doc}"""
    items: list[{e.cls}] = []
    with open(path, newline="", encoding="utf-8") as handle:
        for line_no, row in enumerate(csv.DictReader(handle, delimiter="{delim}"), start=2):
            try:
                items.append({e.cls}.from_row(row))
            except (KeyError, ValueError) as exc:
                logger.warning("skipping line %d of %s: %s", line_no, path, exc)
    return items
'''
    return {"import csv", "import logging", "from pathlib import Path", "LOGGER"}, code


def _aggregate(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    num, text, flag = e.number[0], e.text[0], e.flag
    kind = rng.randrange(3)
    if kind == 0:
        code = f'''def total_{num}_by_{text}({e.plural}: Iterable[{e.cls}]) -> dict[str, float]:
    """Sum `{num}` per `{text}`, largest first."""
    totals: defaultdict[str, float] = defaultdict(float)
    for item in {e.plural}:
        totals[item.{text}] += item.{num}
    return dict(sorted(totals.items(), key=lambda kv: kv[1], reverse=True))
'''
        return {"from collections import defaultdict", "from collections.abc import Iterable"}, code
    if kind == 1:
        code = f'''def mean_{num}({e.plural}: Sequence[{e.cls}], only_{flag}: bool = False) -> float | None:
    """Average `{num}`, optionally over {flag} {e.plural} only; None when nothing matches."""
    values = [item.{num} for item in {e.plural} if item.{flag} or not only_{flag}]
    if not values:
        return None
    return sum(values) / len(values)
'''
        return {"from collections.abc import Sequence"}, code
    code = f'''def top_{e.plural}({e.plural}: Iterable[{e.cls}], n: int = {rng.randint(3, 20)}) -> list[{e.cls}]:
    """The n {e.plural} with the highest `{num}`, ties broken by `{e.key[0]}`."""
    return heapq.nlargest(n, {e.plural}, key=lambda item: (item.{num}, item.{e.key[0]}))
'''
    return {"import heapq", "from collections.abc import Iterable"}, code


def _repository(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    key, ktype = e.key
    code = f'''class {e.cls}Store:
    """Keeps {e.plural} by `{key}`; not thread-safe."""

    def __init__(self) -> None:
        self._items: dict[{ktype}, {e.cls}] = {{}}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: {e.cls}) -> None:
        if item.{key} in self._items:
            raise ValueError(f"duplicate {key}: {{item.{key}!r}}")
        self._items[item.{key}] = item

    def get(self, {key}: {ktype}) -> {e.cls} | None:
        return self._items.get({key})

    def remove(self, {key}: {ktype}) -> bool:
        return self._items.pop({key}, None) is not None

    def where(self, **conditions: object) -> list[{e.cls}]:
        """Items whose attributes equal every keyword given."""
        return [
            item
            for item in self._items.values()
            if all(getattr(item, name) == value for name, value in conditions.items())
        ]
'''
    return set(), code


def _cli(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    num = e.number[0]
    code = f"""def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise a CSV export of {e.plural}.")
    parser.add_argument("path", help="CSV file to read")
    parser.add_argument("--min-{num.replace("_", "-")}", type=float, default={rng.choice(("0.0", "1.0", "10.0"))})
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    items = [i for i in load_{e.plural}(args.path) if i.{num} >= args.min_{num}]
    if not items:
        print("no {e.plural} found", file=sys.stderr)
        return 1
    print(f"{{len(items)}} {e.plural}, {num} total {{sum(i.{num} for i in items):.2f}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
"""
    return {"import argparse", "import logging", "import sys", "NEEDS_LOADER"}, code


def _tests(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    key, ktype = e.key
    v1, v2 = ("1", "2") if ktype == "int" else ('"a1"', '"b2"')
    args = ", ".join(
        {"int": "3", "float": "2.5", "str": '"x"', "bool": "True"}[t] for n, t in e.fields[1:]
    )
    code = f"""def make_{e.name}({key}: {ktype} = {v1}) -> {e.cls}:
    return {e.cls}({key}, {args})


def test_add_and_get() -> None:
    store = {e.cls}Store()
    store.add(make_{e.name}({v1}))
    assert store.get({v1}) == make_{e.name}({v1})
    assert store.get({v2}) is None


def test_duplicate_rejected() -> None:
    store = {e.cls}Store()
    store.add(make_{e.name}())
    with pytest.raises(ValueError):
        store.add(make_{e.name}())


def test_remove() -> None:
    store = {e.cls}Store()
    store.add(make_{e.name}({v2}))
    assert store.remove({v2})
    assert not store.remove({v2})
    assert len(store) == 0
"""
    return {"import pytest", "NEEDS_STORE"}, code


def _utility(e: Entity, rng: random.Random) -> tuple[set[str], str]:
    kind = rng.randrange(3)
    if kind == 0:
        w = rng.randint(3, 12)
        code = f'''def moving_average(values: Sequence[float], window: int = {w}) -> list[float]:
    """Trailing mean over `window` values; the first window-1 entries average what exists."""
    out: list[float] = []
    running = 0.0
    for i, value in enumerate(values):
        running += value
        if i >= window:
            running -= values[i - window]
        out.append(running / min(i + 1, window))
    return out
'''
        return {"from collections.abc import Sequence"}, code
    if kind == 1:
        code = f'''def chunked(items: Iterable[T], size: int = {rng.choice((10, 50, 100, 500))}) -> Iterator[list[T]]:
    """Yield lists of at most `size` items, in order."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
'''
        return {
            "from collections.abc import Iterable, Iterator",
            "from typing import TypeVar",
            "TYPEVAR",
        }, code
    tries = rng.randint(2, 6)
    code = f'''def retry(attempts: int = {tries}, delay: float = {rng.choice(("0.5", "1.0", "2.0"))}) -> Callable[[F], F]:
    """Retry a function on OSError, doubling the delay after each failure."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wait = delay
            for attempt in range(1, attempts + 1):
                try:
                    return func(*args, **kwargs)
                except OSError:
                    if attempt == attempts:
                        raise
                    time.sleep(wait)
                    wait *= 2
            raise AssertionError("unreachable")

        return wrapper  # type: ignore[return-value]

    return decorate
'''
    return {
        "import functools",
        "import time",
        "from collections.abc import Callable",
        "from typing import Any, TypeVar",
        "CALLABLE_TYPEVAR",
    }, code


_DOCS = (
    "Helpers for working with {plural} exported from the {system}.",
    "{Plural}: loading, checking and summarising.",
    "Utilities used by the nightly {plural} report.",
    "Small toolkit for {plural} ({system} integration).",
    "{Plural} from the {system}, as plain dataclasses.",
    "Load and summarise {plural}.",
    "{Plural} module. Kept free of third-party dependencies on purpose.",
    "Code shared by the {plural} importer and its tests.",
)
_SYSTEMS = ("billing system", "warehouse database", "legacy CRM", "scheduling service", "data lake")


def make_code_snippet(rng: random.Random) -> str:
    """One small, valid Python module (usually 600-3000 characters)."""
    e = ENTITIES[rng.randrange(len(ENTITIES))]
    blocks = [_dataclass(e, rng)]
    optional = [_loader, _aggregate, _repository, _utility]
    rng.shuffle(optional)
    goal = target_length(rng, median=1300, high=2600)
    for make in optional:
        if sum(len(c) for _, c in blocks) >= goal:
            break
        blocks.append(make(e, rng))
    names = {make.__name__ for make in optional[: len(blocks) - 1]}
    short = sum(len(c) for _, c in blocks) < 2000
    if short and "_loader" in names and rng.random() < 0.5:
        blocks.append(_cli(e, rng))
    elif short and "_repository" in names and rng.random() < 0.5:
        blocks.append(_tests(e, rng))
    imports: set[str] = {"from __future__ import annotations"}
    for needed, _ in blocks:
        imports |= needed
    prelude = []
    if "LOGGER" in imports:
        prelude.append("logger = logging.getLogger(__name__)")
    if "TYPEVAR" in imports:
        prelude.append('T = TypeVar("T")')
    if "CALLABLE_TYPEVAR" in imports:
        prelude.append('F = TypeVar("F", bound=Callable[..., Any])')
    imports = {i for i in imports if " " in i}
    future = ["from __future__ import annotations"]
    plain = sorted(i for i in imports if i.startswith("import "))
    froms = sorted(i for i in imports if i.startswith("from ") and "__future__" not in i)
    head = ""
    if rng.random() < 0.7:
        head = (
            '"""'
            + rng.choice(_DOCS).format(
                plural=e.plural, Plural=e.plural.capitalize(), system=rng.choice(_SYSTEMS)
            )
            + '"""\n\n'
        )
    style = rng.random()
    if style < 0.2:
        head = (
            f"# {rng.choice(('src/', 'app/', 'lib/', ''))}{e.plural}{rng.choice(('', '_utils', '_io'))}.py\n"
            + head
        )
    elif style < 0.3:
        head = "#!/usr/bin/env python3\n" + head
    parts = [head + "\n".join(future), "\n".join(plain + froms)]
    if prelude:
        parts.append("\n".join(prelude))
    return "\n\n".join(parts) + "\n\n\n" + "\n\n".join(code for _, code in blocks)
