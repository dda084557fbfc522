"""Where the project keeps caches: converted models, teacher answers."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "NLA_CACHE_DIR"


def cache_root() -> Path:
    """`$NLA_CACHE_DIR`, else `~/.cache/nla_variants`. Safe to delete: everything is rebuilt."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nla_variants"
