"""Cheap input checks that run before any expensive stage (model loading, extraction, training,
an MLflow run), so a bad path, URL, device or value is one NLAError and nothing is written.

Every stage from data on uses these; the check of a whole trial against its target
(`training.preflight`) sits above the stages it reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from nla_variants.common.errors import NLAError
from nla_variants.common.masking import is_masked, mask
from nla_variants.config import DEVICE_FIX, device_problem

_ENV_REF = re.compile(r"\$\{(\w+)\}")


def check_device(spec: str | None, setting: str) -> None:
    """`spec` names a device this machine has. torch itself only says so when the first tensor
    moves there (after a model loaded, a dataset was built or an MLflow run exists)."""
    if spec is None:
        return
    import torch

    problem = device_problem(spec)
    if problem:
        raise NLAError(f"{setting} {problem}", DEVICE_FIX)
    device = torch.device(spec)
    if device.type == "cpu":
        return
    backend = getattr(torch, device.type, None)
    available = getattr(backend, "is_available", None)
    if not callable(available) or not available():
        raise NLAError(
            f"{setting} {spec}: this machine has no {device.type} device",
            "use cpu, or leave it unset (cuda when available)",
        )
    count = getattr(backend, "device_count", None)
    if device.index is not None and callable(count) and device.index >= count():
        raise NLAError(
            f"{setting} {spec}: this machine has {count()} {device.type} device(s)",
            f"use {device.type}:0 .. {device.type}:{count() - 1}",
        )


def check_env_refs(value: str | None, setting: str) -> None:
    """Every `${VAR}` in a URL setting is set: unset, the reference would reach the server as
    the password itself and fail only when it is first used."""
    for name in _ENV_REF.findall(value or ""):
        if name not in os.environ:
            raise NLAError(
                f"{setting} {mask(value or '')} uses ${{{name}}}, which is not set",
                f"export {name} before running",
            )


def saved_tracking_uri(uri: str | None, setting: str) -> str | None:
    """The tracking URI a written config (a run's config.yaml) recorded, ready to use again:
    `${VAR}` references expanded from the environment. A password that was masked when the
    config was written is gone; MLFLOW_TRACKING_URI may supply the same URI with it, otherwise
    this fails here, before any work, naming the way to keep the password out of files."""
    if not uri:
        return None
    if is_masked(uri):
        from_env = os.environ.get("MLFLOW_TRACKING_URI", "")
        if from_env and mask(from_env) == uri:
            return from_env
        raise NLAError(
            f"{setting} {mask(uri)} was written with its password masked, so it cannot be used "
            "again",
            "write the password as ${VAR} in mlflow.tracking_uri (e.g. "
            "postgresql://user:${PGPASSWORD}@host/db) for new runs; for this one, set "
            "MLFLOW_TRACKING_URI to the full URI",
        )
    check_env_refs(uri, setting)
    return os.path.expandvars(uri)


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
    check_env_refs(uri, setting)
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
