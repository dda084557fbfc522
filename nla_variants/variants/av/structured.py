"""Structured AV output: the explanation is a fixed list of headed lines, one per schema field.

    <explanation>
    topic: a story told in the past tense about a harbor
    next: the sentence stops after the word "the"
    </explanation>

The teacher's 2-3 feature lines are rendered into the schema deterministically (the last feature,
which the teacher writes about the very end of the prefix, fills the last field; the earlier ones
fill the other fields in order, surplus lines joined into the last-but-one field, missing ones
written as `none`). A generation is valid only with exactly the schema's headings, in order, each
with a non-empty value of bounded length; anything else is a failed extraction, so RL gives it the
failure reward and evaluation counts it (also separately, as `schema_violation_rate`). What the AR
reads is the canonical re-rendering of the parsed fields, the same form its warm start should see.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from nla_variants.core.text import extract_explanation
from nla_variants.variants.av.baseline import BaselineAV, BaselineAVConfig
from nla_variants.variants.registry import register_av

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
MISSING = "none"
JOIN = "; "


class StructuredAVConfig(BaselineAVConfig):
    fields: list[str] = Field(
        ["topic", "next"],
        min_length=1,
        description="schema headings, one line each, in order; also a comma-separated string",
    )
    max_field_words: int = Field(64, ge=1, description="longer field values violate the schema")

    @field_validator("fields", mode="before")
    @classmethod
    def _split_string(cls, v: object) -> object:
        """ "topic,next" -> ["topic", "next"]: a sweep's categorical choices must be strings."""
        return [f.strip() for f in v.split(",") if f.strip()] if isinstance(v, str) else v

    @field_validator("fields")
    @classmethod
    def _valid_fields(cls, v: list[str]) -> list[str]:
        bad = [f for f in v if not _FIELD_NAME.match(f)]
        if bad:
            raise ValueError(f"field names must be lowercase identifiers, got {bad}")
        if len(set(v)) != len(v):
            raise ValueError(f"field names must be unique, got {v}")
        return v


def render_fields(values: dict[str, str]) -> str:
    """The canonical text of a parsed explanation: `name: value` lines in schema order."""
    return "\n".join(f"{name}: {value}" for name, value in values.items())


def parse_fields(text: str, fields: list[str], max_words: int) -> dict[str, str] | None:
    """Field values of a schema-conforming body, or None on any violation: wrong number of
    lines, a heading missing, renamed or out of order, an empty or over-long value."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) != len(fields):
        return None
    values = {}
    for name, line in zip(fields, lines, strict=True):
        head, sep, value = line.partition(":")
        value = " ".join(value.split())
        if not sep or head.strip() != name or not value or len(value.split()) > max_words:
            return None
        values[name] = value
    return values


def render_explanation(explanation: str, fields: list[str], max_words: int) -> str:
    """A teacher explanation (feature lines) in the schema, each value cut to `max_words` words
    so the rendered target always validates. Deterministic."""
    lines = [" ".join(ln.split()) for ln in explanation.strip().splitlines() if ln.strip()]
    n = len(fields)
    if n == 1:
        slots = [JOIN.join(lines)]
    else:
        last, earlier = (lines[-1], lines[:-1]) if lines else ("", [])
        head = earlier[: n - 2]
        rest = JOIN.join(earlier[n - 2 :])
        slots = head + [""] * (n - 2 - len(head)) + [rest, last]
    return render_fields(
        {f: " ".join(s.split()[:max_words]) or MISSING for f, s in zip(fields, slots, strict=True)}
    )


@register_av("structured", StructuredAVConfig)
class StructuredAV(BaselineAV):
    """The baseline AV trained to write, and held to, a headed-lines schema."""

    cfg: StructuredAVConfig

    def parse(self, body: str) -> dict[str, str] | None:
        """Field values of an explanation body, or None when it violates the schema."""
        return parse_fields(body, self.cfg.fields, self.cfg.max_field_words)

    def render_target(self, explanation: str) -> str:
        """The teacher explanation in the schema (already conforming text is kept, so rendering
        twice changes nothing)."""
        parsed = self.parse(explanation)
        if parsed is not None:
            return render_fields(parsed)
        return render_explanation(explanation, self.cfg.fields, self.cfg.max_field_words)

    def extract(self, text: str) -> str | None:
        """The canonical schema text of a generation; None for an unclosed tag or a violation."""
        body = extract_explanation(text)
        parsed = None if body is None else self.parse(body)
        return None if parsed is None else render_fields(parsed)

    def metadata(self) -> dict:
        """Adds `schema`: everything `render_target` depends on (so the AR warm start, which
        reads rendered targets, can key its cache on it)."""
        schema = {"fields": list(self.cfg.fields), "max_field_words": self.cfg.max_field_words}
        return {**super().metadata(), "schema": schema}
