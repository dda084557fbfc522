"""Where a study lives: a SQLite file in the sweep directory by default (one worker, guarded by
a lock file), or a shared database URL (PostgreSQL) that several `nla sweep` workers use at once.

Every check runs before a study is created: a malformed URL, a missing driver, an unreachable
server or an unwritable directory is one NLAError and leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from nla_variants.common.errors import NLAError
from nla_variants.common.masking import mask

LOCAL_DB = "optuna.db"
HEARTBEAT_S = 30  # a worker that stops beating for GRACE_S is dead: its trial is retried
GRACE_S = 120


def local_url(sweep_dir: Path) -> str:
    return f"sqlite:///{(sweep_dir / LOCAL_DB).resolve()}"


def check_writable(directory: Path) -> None:
    """Create the sweep directory (if needed) and prove a file can be written there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise NLAError(
            f"sweep directory {directory} is not writable ({e.strerror or e})",
            "set `directory:` in the sweep config to a writable path",
        ) from None


def check_url(url: str) -> str:
    """Expand ${VARS} (so passwords can stay in the environment) and parse the URL."""
    url = os.path.expandvars(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise NLAError(
            "storage URL is malformed",
            "write e.g. postgresql://USER:PASSWORD@HOST:5432/DB or sqlite:///path/study.db",
        ) from None
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql", "mysql"):
        raise NLAError(
            f"storage URL {mask(url)}: unsupported database {backend!r}",
            "use postgresql://... (shared, several workers) or sqlite:///... (one machine)",
        )
    return url


def open_storage(url: str, stale_trial_callback=None) -> optuna.storages.RDBStorage:
    """Connect (creating Optuna's tables if needed). Stale trials of dead workers are detected
    by heartbeat and handed to `stale_trial_callback`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=HEARTBEAT_S,
                grace_period=GRACE_S,
                heartbeat_stale_trial_callback=stale_trial_callback,
                engine_kwargs={"pool_pre_ping": True},
            )
    except ModuleNotFoundError as e:
        raise NLAError(
            f"storage {mask(url)} needs the database driver {e.name!r}",
            "pip install 'nla-variants[distributed]'",
        ) from None
    except Exception as e:
        reason = " ".join(str(getattr(e, "orig", None) or e).split())[:160]
        raise NLAError(
            f"cannot reach the study database {mask(url)}: {reason}",
            "start the database server or fix host, port, user and password in `storage:`",
        ) from None


@contextlib.contextmanager
def local_lock(sweep_dir: Path) -> Iterator[None]:
    """One worker per local (SQLite) study: a second `nla sweep` on the same directory stops
    with a clear error instead of racing on the file."""
    path = sweep_dir / ".lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NLAError(
                f"another nla sweep is running on {sweep_dir}",
                "wait for it, or give every worker the same shared `storage:` URL (PostgreSQL)",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
