"""The activation store: parquet shards plus a sidecar YAML, in a content-addressed directory.

Layout of a dataset directory `ROOT/NAME-HASH/`:
  config.yaml            the resolved prepare config (written first)
  shard-00000.parquet    rows of a fixed group of documents (atomic: temp file, then rename)
  dataset.yaml           the sidecar, written last: its presence means the dataset is complete

Vectors are stored raw (never normalised) as fixed-size float32 lists of width d_model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from nla_variants.errors import NLAError
from nla_variants.io import atomic_path

FORMAT_VERSION = 1
SIDECAR = "dataset.yaml"
CONFIG = "config.yaml"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def schema(d_model: int) -> pa.Schema:
    return pa.schema(
        [
            ("example_id", pa.string()),
            ("doc_id", pa.string()),
            ("genre", pa.string()),
            ("split", pa.string()),
            ("token_position", pa.int32()),  # prefix length in tokens; vector is at index-1
            ("next_token_id", pa.int32()),  # the token after the prefix, -1 at document end
            ("prefix", pa.string()),
            ("explanation", pa.string()),  # null where no teacher ran or the answer was dropped
            ("vector", pa.list_(pa.float32(), d_model)),
        ]
    )


def write_shard(path: Path, rows: dict[str, Sequence], vectors: np.ndarray) -> None:
    """Write one shard atomically; `rows` holds every schema column except `vector`."""
    d = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    columns = dict(rows)
    columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, d)
    table = pa.Table.from_pydict(columns, schema=schema(d))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def vector_matrix(table: pa.Table) -> np.ndarray:
    """The `vector` column as a float32 array [rows, d_model] (no per-row Python objects)."""
    col = table.column("vector").combine_chunks()
    return col.values.to_numpy().reshape(len(col), -1).astype(np.float32, copy=False)


def shard_rows(path: Path) -> int | None:
    """Row count of a finished shard, or None if it is missing or unreadable."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowInvalid):
        return None


@dataclass
class StoredDataset:
    """A complete dataset on disk: its sidecar and lazy access to its rows."""

    path: Path
    sidecar: dict

    @classmethod
    def open(cls, path: str | Path) -> StoredDataset:
        path = Path(path)
        meta = path / SIDECAR
        if not meta.is_file():
            raise NLAError(
                f"{path} is not a complete dataset (no {SIDECAR})",
                "run `nla prepare` on its config to finish it",
            )
        return cls(path, yaml.safe_load(meta.read_text()))

    @property
    def shards(self) -> list[Path]:
        return [self.path / s for s in self.sidecar["shards"]]

    def table(self, split: str | None = None, columns: list[str] | None = None) -> pa.Table:
        filters = [("split", "=", split)] if split else None
        tables = [pq.read_table(s, columns=columns, filters=filters) for s in self.shards]
        return pa.concat_tables(tables)

    def vectors(self, split: str | None = None) -> np.ndarray:
        """Raw fp32 vectors [n, d_model] of a split (all rows when split is None)."""
        return vector_matrix(self.table(split, ["vector"]))
