"""Rules for structured text: tables, CSV, JSON-like records, lists, recipes, labelled fields.

Why: the next token of a record is predicted by its schema and position (which column or key
comes next), so these rules find the header or the repeating keys and the cell being written.
"""

from __future__ import annotations

import re

from .analysis import Doc
from .common import (
    BRACKET_NAMES,
    RE_DIGITS,
    RE_JSON_KEY,
    RE_KV_LINE,
    RE_LIST_LINE,
    RE_LIST_MARK,
    Picker,
    last_words,
    lower_first,
    next_in_cycle,
    q,
)
from .prose import prose_core

_M = re.MULTILINE
_RE_TABLE_SEP = re.compile(r"^[ \t|:-]+$")
_RE_JSON_KEY_NAME = re.compile(r"\"([\w .-]{1,30})\"\s*:")
_RE_TAIL_KEY = re.compile(r"\"([\w .-]{1,30})\"\s*:\s*$")
_RE_NUMBERED_LINE = re.compile(r"^\s*\d+[.)]", _M)
_RE_LABEL = re.compile(r"^[ \t]*[\"']?([A-Za-z][\w .'/-]{0,30})[\"']?[ \t]*:[ \t]*$")


def _header_cells(line: str, sep: str) -> list[str]:
    cells = [c.strip() for c in line.strip().strip("|").split(sep)]
    return [q(c, 14, keep_end=False) for c in cells]


def _table_header(doc: Doc) -> list[str]:
    for i, ln in enumerate(doc.lines):
        if ln.count("|") >= 2 and not _RE_TABLE_SEP.match(ln):
            nxt = doc.lines[i + 1] if i + 1 < len(doc.lines) else ""
            if _RE_TABLE_SEP.match(nxt) and "-" in nxt:
                return _header_cells(ln, "|")
    for ln in doc.lines:
        if ln.count("|") >= 2 and not _RE_TABLE_SEP.match(ln):
            return _header_cells(ln, "|")
    return []


def _csv_header(doc: Doc) -> tuple[list[str], str]:
    first = doc.text[:400].split("\n", 1)[0]
    for sep in (",", "\t", ";"):
        if first.count(sep) >= 1 and not RE_DIGITS.search(first):
            return _header_cells(first, sep), sep
    return [], ","


def _json_keys(doc: Doc) -> list[str]:
    keys: list[str] = []
    for m in RE_JSON_KEY.finditer(doc.win[-800:]):
        k = m.group().split('"')[1]
        if k not in keys:
            keys.append(k)
    return [q(k, 14, keep_end=False) for k in keys[:4]]


def _kv_keys(doc: Doc) -> list[str]:
    keys: list[str] = []
    for ln in doc.lines[-30:]:
        if ":" in ln and RE_KV_LINE.match(ln):
            keys.append(ln.split(":", 1)[0].strip().strip("\"'"))
    return keys


def _cols_phrase(cols: list[str]) -> str:
    return ", ".join([c for c in cols if c][:4])


def _recipe_context(doc: Doc, pk: Picker) -> str:
    tail = doc.win[-300:]
    if RE_LIST_MARK.match(doc.cur) or len(RE_LIST_LINE.findall(tail)) >= 2:
        return pk.say("recipe_steps" if _RE_NUMBERED_LINE.search(tail) else "recipe_ingredients")
    return pk.say("recipe")


def structured_context(doc: Doc, pk: Picker) -> str | None:
    sub = doc.sub
    if sub == "table":
        cols = _cols_phrase(_table_header(doc))
        return pk.say("table_columns", cols=cols) if cols else None
    if sub == "csv":
        cols = _cols_phrase(_csv_header(doc)[0])
        return pk.say("csv_columns", cols=cols) if cols else pk.say("csv_no_header")
    if sub == "json":
        keys = _cols_phrase(_json_keys(doc))
        return pk.say("json_keys", keys=keys) if keys else None
    if sub == "recipe":
        return _recipe_context(doc, pk)
    if sub == "list":
        return pk.say("list", items=len(RE_LIST_LINE.findall(doc.win[-600:])))
    if sub == "kv":
        keys = list(dict.fromkeys(_kv_keys(doc)))
        cols = _cols_phrase([q(k, 14, keep_end=False) for k in keys])
        return pk.say("kv_keys", cols=cols) if cols else None
    return None


def _table_end(doc: Doc, pk: Picker) -> str:
    cur = doc.cur
    cols = _table_header(doc)
    if not cur.strip():
        return pk.say("table_row_end", first=cols[0] if cols else None)
    s = cur.strip()
    idx = s.count("|") - (1 if s.startswith("|") else 0)
    col = cols[idx] if 0 <= idx < len(cols) else None
    if cur.rstrip().endswith("|"):
        if cols and idx >= len(cols):
            return pk.say("table_row_closed")
        return pk.say("table_next_cell", col=col)
    return pk.say("table_in_cell", col=col, w=last_words(s.rsplit("|", 1)[-1]))


def _csv_end(doc: Doc, pk: Picker) -> str:
    cur = doc.cur
    cols, sep = _csv_header(doc)
    if not cur.strip():
        return pk.say("csv_row_end", first=cols[0] if cols else None)
    idx = cur.count(sep)
    col = cols[idx] if 0 <= idx < len(cols) else None
    if cur.rstrip(" ").endswith(sep):
        return pk.say("csv_next_field", col=col, n=idx + 1)
    return pk.say("csv_in_field", col=col, n=idx + 1, w=last_words(cur.rsplit(sep, 1)[-1]))


def _json_end(doc: Doc, pk: Picker, tail: str) -> str | None:
    c = tail[-1]
    key = _RE_TAIL_KEY.search(tail[-80:])
    if key:
        return pk.say("json_after_key", k=q(key.group(1), 16))
    keys = [m.group(1) for m in _RE_JSON_KEY_NAME.finditer(doc.win[-800:])]
    nxt = next_in_cycle(keys)
    nk = f'"{q(nxt, 16)}"' if nxt else "the next key"
    last = q(keys[-1], 16) if keys else None
    if doc.cur.count('"') % 2 == 1:
        where = f'the "{last}" value' if last else "a string value"
        return pk.say(
            "json_in_string", where=where, nk=nk, w=last_words(doc.cur.rsplit('"', 1)[-1])
        )
    if c == ",":
        return pk.say("json_after_comma", nk=nk)
    if c.isdigit() or tail.endswith(("true", "false", "null", '"')):
        return pk.say("json_value_done", last=last, nk=nk, v=last_words(tail, 1))
    if c in "{[":
        return pk.say("json_opened", what=BRACKET_NAMES[c])
    if c in "}]":
        return pk.say("json_closed")
    return None


def _line_end(doc: Doc, pk: Picker, prev: str) -> str | None:
    """A blank current line after a list item or a labelled field."""
    pm = RE_LIST_MARK.match(prev)
    if pm:
        marker = pm.group(1)
        if marker[:-1].isdigit():
            nxt = f"item {int(marker[:-1]) + 1}"
        else:
            nxt = "another item with the same marker"
        return pk.say("list_line_end", last=last_words(prev), nxt=nxt)
    keys = _kv_keys(doc)
    if keys and ":" in prev:
        nxt = next_in_cycle(keys)
        return pk.say("kv_line_end", n=q(nxt, 16) if nxt else None)
    return None


def structured_end(doc: Doc, pk: Picker) -> str | None:
    cur = doc.cur
    prev = next((ln for ln in reversed(doc.lines[:-1]) if ln.strip()), "")
    if doc.sub == "table" or cur.count("|") >= 1 and prev.count("|") >= 2:
        return _table_end(doc, pk)
    if doc.sub == "csv":
        return _csv_end(doc, pk)
    tail = doc.win.rstrip()
    if doc.sub == "json" and tail:
        out = _json_end(doc, pk, tail)
        if out:
            return out
    m = RE_LIST_MARK.match(cur)
    if m and cur.strip() == m.group(1):
        return pk.say("list_marker", mk=q(m.group(1), 4))
    if m:
        core = prose_core(cur[m.end() :], pk, doc.genre)
        return pk.say_fit("list_item", core=core, core_lc=lower_first(core))
    if not cur.strip():
        out = _line_end(doc, pk, prev)
        if out:
            return out
    kv = _RE_LABEL.match(cur)
    if kv:
        return pk.say("kv_label", k=q(kv.group(1), 16))
    return None
