"""Corpus sources: the builtin offline corpus, local files, and Hugging Face `datasets`.

Every source yields `Document`s with stable ids; `manifest_hash` identifies the exact corpus
(ids, texts, labels), so a changed file changes the dataset's content address.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj, hash_text
from nla_variants.config import CorpusConfig
from nla_variants.data.documents import Document

FILE_SUFFIXES = (".txt", ".jsonl", ".parquet")


def manifest_hash(docs: Iterable[Document]) -> str:
    """sha256 over (doc_id, text hash, genre) in corpus order."""
    return hash_obj([[d.doc_id, hash_text(d.text, 32), d.genre] for d in docs])


def corpus_sources(source: str, docs: Iterable[Document]) -> dict:
    """Where the builtin corpus's documents came from, for the dataset sidecar: counts per source
    and the pinned standard-library files they were read from (other sources: nothing; their
    manifest hash already names every document)."""
    if source != "builtin":
        return {}
    from nla_variants.data.builtin import BUILTIN_VERSION, PinnedStdlib

    stdlib = PinnedStdlib()
    return {
        "builtin": {
            "version": BUILTIN_VERSION,
            "python": stdlib.python,
            "stdlib_pin": stdlib.fingerprint,
            "stdlib_files": len(stdlib.files),
            "documents_by_source": dict(sorted(Counter(d.source for d in docs).items())),
        }
    }


def _row_genre(row: dict, genre_column: str | None) -> str | None:
    if genre_column is None:
        return None
    value = row.get(genre_column)
    return None if value is None else str(value)


def _rows_to_docs(
    rows: Iterable[dict], prefix: str, text_column: str, genre_column: str | None
) -> Iterator[Document]:
    for i, row in enumerate(rows):
        if text_column not in row:
            raise NLAError(
                f"{prefix} has no column {text_column!r} (columns: {sorted(row)[:8]})",
                "set corpus.text_column to the column holding the text",
            )
        text = row[text_column]
        if isinstance(text, str):
            yield Document(f"{prefix}:{i}", text, _row_genre(row, genre_column), prefix)


def _jsonl_rows(path: Path) -> list[dict]:
    """One JSON object per non-empty line; anything else is an NLAError naming the line."""
    fix = "write one JSON object per line, as UTF-8"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise NLAError(f"{path} is not UTF-8 text (byte {e.start})", fix) from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise NLAError(f"{path}:{n} is not valid JSON", fix) from None
        if not isinstance(row, dict):
            raise NLAError(f"{path}:{n} is a JSON {type(row).__name__}, not an object", fix)
        rows.append(row)
    return rows


def _read_file(path: Path, cfg: CorpusConfig) -> Iterator[Document]:
    if not path.is_file():
        raise NLAError(f"corpus file {path} does not exist", "fix corpus.paths")
    if path.suffix == ".txt":
        try:  # never replacement characters: they would be trained on and hashed as the text
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise NLAError(
                f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8"
            ) from None
        yield Document(f"{path.name}:0", text, None, path.name)
    elif path.suffix == ".jsonl":
        yield from _rows_to_docs(_jsonl_rows(path), path.name, cfg.text_column, cfg.genre_column)
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow raises several types for a bad file
            raise NLAError(
                f"{path} is not a readable parquet file ({type(e).__name__})", "check the file"
            ) from None
        yield from _rows_to_docs(table.to_pylist(), path.name, cfg.text_column, cfg.genre_column)
    else:
        raise NLAError(
            f"corpus file {path} has an unsupported type {path.suffix!r}",
            f"use one of {', '.join(FILE_SUFFIXES)}",
        )


def _read_hf(cfg: CorpusConfig) -> Iterator[Document]:
    """Hugging Face `datasets`: a hub name (for real corpora such as FineWeb) or a builder like
    `json`/`parquet` with `data_files` for local data. Streaming takes the first documents."""
    import datasets

    hf = cfg.hf
    assert hf is not None
    try:
        ds = datasets.load_dataset(
            hf.name, hf.config, split=hf.split, streaming=hf.streaming, data_files=hf.data_files
        )
    except Exception as e:  # network, missing files, bad names: all one user-facing error
        raise NLAError(
            f"could not load dataset {hf.name!r} ({type(e).__name__}: {str(e)[:120]})",
            "check corpus.hf (name, config, split, data_files) and that it is available offline",
        ) from None
    if cfg.max_documents is not None and hf.streaming:
        ds = ds.take(cfg.max_documents)
    yield from _rows_to_docs(ds, f"hf:{hf.name}", cfg.text_column, cfg.genre_column)


def load_corpus(cfg: CorpusConfig, seed: int = 0) -> list[Document]:
    """Documents of at least `min_chars` characters; with `max_documents`, a seeded sample that
    keeps corpus order (so builtin genres stay mixed and the selection is reproducible)."""
    if cfg.source == "builtin":
        from nla_variants.data.builtin import build_builtin_corpus

        docs: Iterable[Document] = build_builtin_corpus(seed=seed)
    elif cfg.source == "files":
        paths = [Path(p).expanduser() for p in cfg.paths]
        for p in paths:  # fail before reading anything
            if not p.is_file():
                raise NLAError(f"corpus file {p} does not exist", "fix corpus.paths")
        docs = (d for p in paths for d in _read_file(p, cfg))
    else:
        docs = _read_hf(cfg)
    kept = [d for d in docs if len(d.text) >= cfg.min_chars]
    if cfg.max_documents is not None and len(kept) > cfg.max_documents:
        chosen = sorted(random.Random(seed).sample(range(len(kept)), cfg.max_documents))
        kept = [kept[i] for i in chosen]
    if not kept:
        raise NLAError(
            f"the corpus has no document of at least {cfg.min_chars} characters",
            "lower corpus.min_chars or add documents",
        )
    return kept
