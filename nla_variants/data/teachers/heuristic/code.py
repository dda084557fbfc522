"""Rules for Python source (and fenced code in documentation): where we are, and what is open.

Why: a code prefix is predicted by its scope (function, class, block) and its lexical state (an
open string, comment or bracket, a keyword awaiting an operand), not by topic words.
"""

from __future__ import annotations

import re

from .analysis import Doc
from .common import (
    BRACKET_NAMES,
    CLOSERS,
    OPENERS,
    PY_KEYWORDS,
    QUOTE_NAMES,
    WORDS,
    Picker,
    last_words,
    q,
)

_CODE_SCAN = 1200  # chars of code scanned for open strings, comments and brackets
_M = re.MULTILINE
_RE_SAFE_START = re.compile(r"^[ \t]*(?:def|class|import|from|@)\b", _M)
_RE_DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+(\w+)")
_RE_CLASS = re.compile(r"^[ \t]*class[ \t]+(\w+)")
_RE_BLOCK = re.compile(r"^[ \t]*(if|elif|else|for|while|with|try|except|finally)\b")
_RE_IMPORT_LINE = re.compile(r"^(?:import|from) ", _M)
_RE_TAIL_NAME = re.compile(r"[\w.]+$")
_RE_NAME_BEFORE = re.compile(r"([A-Za-z_][\w.]*)\s*$")
# Whole comments and closed strings are single tokens; then lone (unclosed) quotes and brackets.
_CODE_TOK = re.compile(
    r"#[^\n]*|\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|\"\"\"|'''"
    r"|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|[\"'()\[\]{}]"
)
_NOT_A_CALL = ("if", "while", "return", "and", "or", "not", "in")
_KEYWORD_PHRASE: dict[str, str] = WORDS["code_keyword_phrase"]


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _scope(lines: list[str]) -> tuple[str | None, str | None, str | None]:
    """(function, class, block keyword) that enclose the last line, by indentation."""
    cur = lines[-1]
    prev = lines[:-1]
    if cur.strip():
        target = indent_of(cur)
    else:  # a blank current line: indentation typed so far, or that of the last statement
        last = next((ln for ln in reversed(prev) if ln.strip()), "")
        target = len(cur) if cur else indent_of(last) + (4 if last.rstrip().endswith(":") else 0)
    func = cls = block = None
    for ln in reversed(prev):
        if not ln.strip():
            continue
        ind = indent_of(ln)
        if ind >= target:
            continue
        m = _RE_DEF.match(ln)
        if m:
            if func is None and cls is None:
                func = m.group(1)
        else:
            m = _RE_CLASS.match(ln)
            if m:
                cls = m.group(1)
                break
            m = _RE_BLOCK.match(ln)
            if m and block is None and func is None:
                block = m.group(1)
        target = ind
        if ind == 0:
            break
    return func, cls, block


def code_context(doc: Doc, pk: Picker) -> str | None:
    lines = doc.lines[-80:]
    func, cls, block = _scope(lines)
    func = q(func, 24, keep_end=False) if func else None
    cls = q(cls, 24, keep_end=False) if cls else None
    where = None
    if func and cls:
        where = pk.say("code_in_method", func=func, cls=cls)
    elif func:
        where = pk.say("code_in_function", func=func)
    elif cls:
        where = pk.say("code_in_class", cls=cls)
    art = "an" if block and block[0] in "aeiou" else "a"
    if block and where:
        where += f", inside {art} {block} block"
    elif block:
        where = pk.say("code_in_block", art=art, block=block)
    if where is None:
        recent = "\n".join(lines[-12:])
        imports = _RE_IMPORT_LINE.search(recent)
        where = pk.say("code_imports" if imports else "code_top_level")
    return where


def _scan_code(src: str) -> tuple[str | None, int, bool, list[tuple[str, int]]]:
    """String/comment/bracket state at the end of Python source `src`.

    Returns (open string delimiter or None, its position, inside a comment, open brackets).
    Closed strings and comments are consumed whole by the token regex, so only brackets and
    unclosed delimiters reach the loop.
    """
    stack: list[tuple[str, int]] = []
    for m in _CODE_TOK.finditer(src):
        t = m.group()
        c = t[0]
        if c in "([{":
            stack.append((t, m.start()))
        elif c in ")]}":
            if stack and stack[-1][0] == OPENERS[t]:
                stack.pop()
        elif c == "#":
            if m.end() == len(src):
                return None, -1, True, stack
        elif t == '"""' or t == "'''":
            return t, m.start(), False, stack  # an unclosed triple quote runs to the end
        elif len(t) == 1 and "\n" not in src[m.end() :]:
            return t, m.start(), False, stack  # a string opened on the last line
        # else: a closed string, or a quote left unclosed on an earlier line
    return None, -1, False, stack


def _code_source(doc: Doc) -> str:
    """The code to scan: inside an open fence, or the tail of the window."""
    win = doc.win
    if doc.fence_open:
        src = win[win.rfind("```") + 3 :]
        return src[src.find("\n") + 1 :] if "\n" in src else ""
    # Start the scan at a def/class/import line when there is one: surely not inside a string.
    src = win[-_CODE_SCAN:]
    m = _RE_SAFE_START.search(src)
    if m:
        return src[m.start() :]
    if len(win) > _CODE_SCAN and "\n" in src[:-1]:
        return src[src.find("\n") + 1 :]
    return src


def _open_string(pk: Picker, src: str, delim: str, start: int) -> str:
    body = q(src[start + len(delim) :], 20)
    after = f' after "{body}"' if body else ""
    if len(delim) == 3:
        return pk.say("code_in_docstring", after=after)
    return pk.say("code_in_string", after=after, q=QUOTE_NAMES[delim])


def _open_bracket(pk: Picker, src: str, br: str, pos: int, tail: str) -> str:
    name = _RE_NAME_BEFORE.search(src[max(0, pos - 40) : pos])
    inner = src[pos + 1 :].strip()
    state = "the first element" if not inner else "more elements or the closing " + CLOSERS[br]
    if br == "(" and name and name.group(1) not in _NOT_A_CALL:
        return pk.say("code_in_call", fn=q(name.group(1), 20), state=state)
    ending = f'"{tail}"' if tail else "nothing yet"
    return pk.say("code_in_bracket", what=BRACKET_NAMES[br], state=state, ending=ending)


def _line_end(doc: Doc, pk: Picker, src: str) -> str:
    """The code is at the start of a new line."""
    lines = src.rstrip("\n \t").split("\n")
    last = lines[-1] if lines else ""
    indent = len(doc.cur) if doc.cur and not doc.cur.strip() else None
    if last.rstrip().endswith(":"):
        return pk.say("code_after_header", last=last_words(last))
    if src.endswith("\n\n") or (indent == 0 and src.rstrip(" \t").endswith("\n\n")):
        return pk.say("code_after_blank")
    lvl = indent if indent is not None else indent_of(last)
    return pk.say("code_new_line", lvl=lvl, last=last_words(last))


def _after_name(pk: Picker, src: str, stripped: str, tail: str) -> str:
    """The code ends on a name or keyword."""
    word = _RE_TAIL_NAME.search(stripped[-60:])
    w = q(word.group() if word else stripped[-12:], 20)
    kw = w.split(".")[-1]
    if not (kw in PY_KEYWORDS or src.endswith((" ", "\t"))):
        return pk.say("code_mid_name", w=w)
    return pk.say(_KEYWORD_PHRASE.get(kw, "code_after_space"), kw=kw, tail=tail, w=w)


_LAST_CHAR = {".": "code_after_dot", ",": "code_after_comma"}


def code_end(doc: Doc, pk: Picker) -> str:
    src = _code_source(doc)
    if doc.cur.strip() in (">>>", "..."):
        return pk.say("code_prompt_cont" if doc.cur.strip() == "..." else "code_prompt")
    in_str, str_start, comment, stack = _scan_code(src)
    stripped = src.rstrip(" \t")
    tail = last_words(src)
    if in_str is not None:
        return _open_string(pk, src, in_str, str_start)
    if comment:
        return pk.say("code_in_comment", tail=tail)
    if stack:
        return _open_bracket(pk, src, *stack[-1], tail)
    if not src.strip():
        return pk.say("code_empty")
    if src.endswith("\n") or (stripped.endswith("\n") and not doc.cur.strip()):
        return _line_end(doc, pk, src)
    c = stripped[-1]
    if c == ":":
        return pk.say("code_after_colon", tail=tail)
    if c.isalnum() or c == "_":
        return _after_name(pk, src, stripped, tail)
    if c in _LAST_CHAR:
        return pk.say(_LAST_CHAR[c], tail=tail)
    if c == "=" and not stripped.endswith(("==", "!=", "<=", ">=")):
        return pk.say("code_after_assign", tail=tail)
    if c in ")]}":
        return pk.say("code_after_close", tail=tail)
    return pk.say("code_mid_expression", tail=tail)
