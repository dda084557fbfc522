"""A teacher line that states a fact about the model: its own most likely next tokens.

Why: every teacher reads only the prefix, so an AV that imitates one can at best tie the prompt,
a reading of the same text. The target's prediction at the position is not in the text, and the
residual carries it (benchmarks/teacher_lever.py: for a linear reader the model's top three next
tokens double what the teacher's text tells about the vector). `teacher.next_tokens: N` appends
this line to every explanation; the dataset keeps the text-only explanation as the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_TOKEN_CHARS = 16
LEAD = "The model expects next:"
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"`*#<>_]')
_NAMES = {'"': "a quote mark", "`": "a backtick", "*": "an asterisk", "#": "a hash sign"}
_NAMES |= {"<": "an angle bracket", ">": "an angle bracket", "_": "an underscore"}


def show_token(token: str) -> str:
    """One decoded token as the line writes it: quoted, or in words where it is only
    whitespace; quote marks, markup and control characters dropped (the feature format)."""
    stripped = token.strip()
    text = _UNSAFE.sub("", stripped)[:MAX_TOKEN_CHARS]
    if text:
        return f'"{text}"'
    if stripped:  # only characters the format cannot carry
        return _NAMES.get(stripped[0], "a symbol")
    if "\n" in token:
        return "a line break"
    return "a space" if token else "nothing"


def prediction_line(tokens: Sequence[str]) -> str:
    """'The model expects next: "a", "b" or "c"' for the decoded tokens, most likely first
    (a token shown the same as an earlier one is left out)."""
    shown = list(dict.fromkeys(show_token(t) for t in tokens))
    if not shown:
        raise ValueError("prediction_line needs at least one token")
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    return f"{LEAD} {listed}"


def without_prediction(text: str) -> str:
    """`text` without its prediction lines: what it says about the text itself."""
    return "\n".join(ln for ln in text.split("\n") if not ln.strip().startswith(LEAD))
