"""Generated Python modules: dataclasses, loaders, aggregations, repositories, CLIs and tests.

Why: the code genre is mostly real stdlib source, but the stdlib is old-fashioned, library-style
code; these small application-style modules (type hints, dataclasses, argparse, pytest) widen the
genre and keep it non-empty on an install without stdlib sources. Every module parses. The
entities and the code templates are `data/snippets.yaml`; each block below fills one template and
names the imports it needs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .grammar import lexicon, target_length

_D = lexicon("snippets")
_T: dict[str, str] = _D["templates"]
Block = tuple[set[str], str]  # (imports and prelude markers it needs, code)


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


ENTITIES = tuple(Entity(**e) for e in _D["entities"])

_CONVERT = {"int": "int", "float": "float", "str": "str", "bool": "_parse_bool"}


def _dataclass(e: Entity, rng: random.Random) -> Block:
    fields = "\n".join(f"    {n}: {t}" for n, t in e.fields)
    row = ",\n".join(f'            {n}={_CONVERT[t]}(row["{n}"])' for n, t in e.fields)
    frozen = "(frozen=True)" if rng.random() < 0.5 else ""
    noun = e.name.replace("_", " ")
    doc = rng.choice(_D["dataclass_doc"]).format(noun=noun)
    code = _T["dataclass"].format(e=e, frozen=frozen, doc=doc, fields=fields, row=row)
    return {"from dataclasses import dataclass"}, code


def _loader(e: Entity, rng: random.Random) -> Block:
    delim = rng.choice((",", ";", "\\t"))
    doc = rng.choice(_D["loader_doc"]).format(plural=e.plural, delim=delim)
    code = _T["loader"].format(e=e, doc=doc, delim=delim)
    return {"import csv", "import logging", "from pathlib import Path", "LOGGER"}, code


def _aggregate(e: Entity, rng: random.Random) -> Block:
    slots = {"e": e, "num": e.number[0], "text": e.text[0], "flag": e.flag}
    kind = rng.randrange(3)
    if kind == 0:
        code = _T["aggregate_total"].format(**slots)
        return {"from collections import defaultdict", "from collections.abc import Iterable"}, code
    if kind == 1:
        return {"from collections.abc import Sequence"}, _T["aggregate_mean"].format(**slots)
    code = _T["aggregate_top"].format(n_top=rng.randint(3, 20), **slots)
    return {"import heapq", "from collections.abc import Iterable"}, code


def _repository(e: Entity, rng: random.Random) -> Block:
    key, ktype = e.key
    return set(), _T["repository"].format(e=e, key=key, ktype=ktype)


def _cli(e: Entity, rng: random.Random) -> Block:
    num = e.number[0]
    min_default = rng.choice(("0.0", "1.0", "10.0"))
    code = _T["cli"].format(e=e, num=num, num_flag=num.replace("_", "-"), min_default=min_default)
    return {"import argparse", "import logging", "import sys", "NEEDS_LOADER"}, code


def _tests(e: Entity, rng: random.Random) -> Block:
    key, ktype = e.key
    v1, v2 = ("1", "2") if ktype == "int" else ('"a1"', '"b2"')
    args = ", ".join(
        {"int": "3", "float": "2.5", "str": '"x"', "bool": "True"}[t] for n, t in e.fields[1:]
    )
    code = _T["tests"].format(e=e, key=key, ktype=ktype, v1=v1, v2=v2, args=args)
    return {"import pytest", "NEEDS_STORE"}, code


def _utility(e: Entity, rng: random.Random) -> Block:
    kind = rng.randrange(3)
    if kind == 0:
        code = _T["moving_average"].format(w=rng.randint(3, 12))
        return {"from collections.abc import Sequence"}, code
    if kind == 1:
        code = _T["chunked"].format(size=rng.choice((10, 50, 100, 500)))
        needs = {"from collections.abc import Iterable, Iterator", "from typing import TypeVar"}
        return needs | {"TYPEVAR"}, code
    tries = rng.randint(2, 6)
    code = _T["retry"].format(tries=tries, delay=rng.choice(("0.5", "1.0", "2.0")))
    needs = {"import functools", "import time", "from collections.abc import Callable"}
    return needs | {"from typing import Any, TypeVar", "CALLABLE_TYPEVAR"}, code


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
            + rng.choice(_D["docs"]).format(
                plural=e.plural, Plural=e.plural.capitalize(), system=rng.choice(_D["systems"])
            )
            + '"""\n\n'
        )
    style = rng.random()
    if style < 0.2:
        folder = rng.choice(("src/", "app/", "lib/", ""))
        head = f"# {folder}{e.plural}{rng.choice(('', '_utils', '_io'))}.py\n" + head
    elif style < 0.3:
        head = "#!/usr/bin/env python3\n" + head
    parts = [head + "\n".join(future), "\n".join(plain + froms)]
    if prelude:
        parts.append("\n".join(prelude))
    return "\n\n".join(parts) + "\n\n\n" + "\n\n".join(code for _, code in blocks)
