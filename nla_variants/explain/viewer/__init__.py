"""The token viewer: one self-contained HTML file (no network, no external assets) showing the
explained texts as tokens coloured by their reconstruction score; clicking or hovering a token
shows its explanation(s), the score against the shuffled control and the text-only baseline's
explanation; the arrow keys (or j/k) move between tokens.

The data is embedded as JSON and every explanation is inserted as text, never as markup, so a
generated explanation cannot script the page.
"""

from __future__ import annotations

import html
import json
from importlib.resources import files
from pathlib import Path

from nla_variants.common.io import write_text_atomic
from nla_variants.explain.explain import ExplainResult


def render_html(result: ExplainResult, title: str) -> str:
    """The viewer page for an explain result."""
    data = {
        "title": title,
        "summary": result.summary,
        "documents": result.documents,
        "records": result.records,
    }
    # inside <script>, "</" could close the element and "<!--" open a comment
    payload = (
        json.dumps(data, ensure_ascii=False).replace("</", "<\\/").replace("<!--", "<\\u0021--")
    )
    page = (files(__package__) / "page.html").read_text(encoding="utf-8")
    return page.replace("__TITLE__", html.escape(title)).replace("__DATA__", payload)


def write_html(path: Path, result: ExplainResult, title: str) -> None:
    """Write the viewer atomically (nothing half-written)."""
    write_text_atomic(path, render_html(result, title))
