"""Atomic file writes: write a temp file beside the target, then rename, so readers and
interrupted runs never see a half-written file. A write that fails for lack of space leaves
nothing behind and raises `DiskFull` naming the target (one line for the user)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from nla_variants.common.errors import DISK_FULL_ERRNOS, DiskFull


@contextlib.contextmanager
def naming_full_disk(path: str | Path) -> Iterator[None]:
    """Turn "no space left" inside the block into a one-line DiskFull naming `path`."""
    try:
        yield
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise DiskFull(path) from None
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto `path` only on success."""
    path = Path(path)
    with naming_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temp directory beside `path`; on success it becomes `path`. An existing `path` is
    swapped out (`replace`) or kept, the new copy dropped (first writer wins, e.g. a cache)."""
    path = Path(path)
    with naming_full_disk(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            yield tmp
            if not path.exists():
                tmp.rename(path)
            elif replace:
                old = path.with_name(f".{path.name}.old")
                path.rename(old)
                tmp.rename(path)
                shutil.rmtree(old)
            else:
                shutil.rmtree(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_yaml_atomic(path: str | Path, data: object) -> None:
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
