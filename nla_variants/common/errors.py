"""User-facing errors: one line naming the problem and the fix; the CLI exits 2 on them."""

from __future__ import annotations

import errno
from pathlib import Path

from pydantic import ValidationError

from nla_variants.common.masking import mask

# errno values that mean "the disk is full" (a full filesystem or an exhausted quota)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class NLAError(Exception):
    """A bad input the user can fix. The message is one line: the problem, then the fix."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} (fix: {fix})" if fix else problem)


class DiskFull(NLAError):
    """A write failed for lack of space. Every writer keeps what it finished (atomic writes), so
    the same command continues after space is freed."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            f"no space left on the device while writing {path}",
            "free some space (or point that setting at another disk) and rerun the same "
            "command: finished work is kept",
        )
        self.path = str(path)


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, DiskFull) or (isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS)


class TrialStopped(Exception):
    """Raised by a trial's reporter to end it early (a sweep's pruner); not a failure."""


def one_line(err: BaseException) -> str:
    """`Type: message` on one line, secrets masked, at most 500 characters (MLflow tags,
    study attributes, log lines)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return mask(f"{type(err).__name__}: {text}")[:500]


def _key(part: object) -> str:
    """A config key as written, or quoted and escaped if it holds unprintable characters."""
    text = str(part)
    return text if text.isprintable() else repr(text)


def format_validation_error(err: ValidationError) -> str:
    """The first problem of a pydantic error, as `where: what` on one line."""
    first = err.errors()[0]
    where = ".".join(_key(p) for p in first["loc"]) or "config"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{where}: {msg}{more}"
