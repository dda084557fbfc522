"""Secrets never leave the process: every URL-shaped setting (a study database, an MLflow
tracking URI, a teacher's base_url, ...) is masked before it reaches a log line, an error
message, a state file or MLflow. One helper, `mask`, is used for all of them.

    >>> mask("postgresql+psycopg://nla:hunter2@db:5432/study")
    'postgresql+psycopg://nla:***@db:5432/study'
    >>> mask("http://host/api?token=abc&x=1")
    'http://host/api?token=***&x=1'

A password written as an environment reference (`${PGPASSWORD}`, expanded only when the URL is
used) is kept as it is: it names the secret without revealing it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
SECRET_WORDS = ("key", "token", "secret", "password")

# scheme://user:PASSWORD@host: the password runs to the last '@' of the word, so a password
# holding '@' or '/' is masked whole (over-masking a host is safe; leaking a password is not)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:)(?P<secret>\S*)@")
_WORDS = "|".join((*SECRET_WORDS, "passwd", "pwd", "sig"))
_QUERY = re.compile(
    rf"(?P<head>[?&;][^=&\s#]*(?:{_WORDS})[^=&\s#]*=)(?P<secret>[^&\s#'\"]+)", re.IGNORECASE
)
_ENV_REF = re.compile(r"^\$(\{\w+\}|\w+)$")


def _replace(m: re.Match) -> str:
    secret = m.group("secret")
    kept = secret if _ENV_REF.match(secret) else MASK
    return m.group("head") + kept + m.group(0)[len(m.group("head")) + len(secret) :]


def mask(text: str) -> str:
    """`text` with the password of every URL in it, and every secret-named query value,
    replaced by ***. Free text (an error message, a log line) is masked the same way."""
    return _QUERY.sub(_replace, _USERINFO.sub(_replace, text))


def is_masked(text: str) -> bool:
    """Whether `text` holds a password (or secret query value) that was masked when written:
    such a URL cannot be used again, the secret is gone."""
    return any(
        m.group("secret") == MASK for pattern in (_USERINFO, _QUERY) for m in pattern.finditer(text)
    )


def mask_tree(obj: Any) -> Any:
    """A copy of nested dicts/lists with every string masked (configs before they are
    written or logged)."""
    if isinstance(obj, str):
        return mask(obj)
    if isinstance(obj, dict):
        return {k: mask_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [mask_tree(v) for v in obj]
    return obj


class MaskingFilter(logging.Filter):
    """A logging filter that masks secrets in every record a handler emits."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
