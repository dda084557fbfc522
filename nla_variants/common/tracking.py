"""MLflow tracking stores as readers see them: whether one is there, without creating it.

MLflow creates a local store (a sqlite file, an mlruns directory) the moment a client opens it,
so code that only reads (`nla explain`, `nla compare`) asks first: a relative sqlite URI read
from another directory would otherwise leave an empty store there and fail to find its runs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit


def tracking_store_exists(uri: str) -> bool:
    """A tracking store that is already there; any remote store counts as there."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        from sqlalchemy.engine import make_url

        return Path(make_url(uri).database or "").is_file()
    if scheme in ("", "file"):
        return Path(urlsplit(uri).path if scheme else uri).is_dir()
    return True
