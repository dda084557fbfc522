"""Cheap input checks that run before any expensive stage (model loading, extraction, training,
an MLflow run), so a bad path or URL is one NLAError and nothing is written."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from nla_variants.errors import NLAError
from nla_variants.masking import mask


def check_writable_dir(path: str | Path, setting: str) -> None:
    """`path` is, or can be created as, a writable directory. Creates nothing: the nearest
    existing ancestor must be a writable directory (not, say, a regular file)."""
    if "\x00" in str(path):
        raise NLAError(f"{setting} {path!r} holds a NUL character", f"set {setting} to a path")
    target = Path(path).expanduser().absolute()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return
    why = "is not a directory" if not probe.is_dir() else "is not writable"
    problem = f"{setting} {path} {why}"
    if probe != target:
        problem = f"{setting} {path} cannot be created: {probe} {why}"
    raise NLAError(problem, f"set {setting} to a writable directory")


def tracking_schemes() -> set[str]:
    """URI schemes MLflow (and its installed plugins) can track to."""
    try:
        from mlflow.tracking._tracking_service.utils import _tracking_store_registry

        return set(_tracking_store_registry._registry)
    except (ImportError, AttributeError):  # a future MLflow: let MLflow itself decide
        return set()


def check_tracking_uri(uri: str | None, setting: str = "mlflow.tracking_uri") -> None:
    """A scheme MLflow knows and, for a local store, a usable place; nothing is created."""
    if not uri:
        return
    expanded = os.path.expandvars(uri)
    scheme = urlsplit(expanded).scheme.split("+")[0].lower()
    known = tracking_schemes()
    if known and scheme not in known:
        raise NLAError(
            f"{setting} {mask(uri)}: MLflow cannot track to a {scheme!r} URI",
            "use e.g. sqlite:///mlflow.db, a directory, or http://HOST:5000",
        )
    if scheme == "sqlite":
        from sqlalchemy.engine import make_url

        db = make_url(expanded).database
        if db and db != ":memory:":
            check_writable_dir(Path(db).parent, f"{setting} (its database folder)")
    elif scheme in ("", "file"):
        check_writable_dir(urlsplit(expanded).path if scheme else expanded, setting)


def check_checkpoint(path: str | None, marker: str, setting: str) -> None:
    """A resume checkpoint exists (its `marker` file is there) before anything starts."""
    if path and not (Path(path) / marker).is_file():
        raise NLAError(
            f"{setting}: {path} is not a checkpoint (no {marker})",
            f"point {setting} at a checkpoint directory written by nla train, or remove it",
        )
