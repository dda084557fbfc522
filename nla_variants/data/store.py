"""The activation store: parquet shards plus a sidecar YAML, in a content-addressed directory.

Layout of a dataset directory `ROOT/NAME-HASH/`:
  config.yaml            the resolved prepare config (written first)
  shard-00000.parquet    rows of a fixed group of documents (atomic: temp file, then rename)
  dataset.yaml           the sidecar, written last: its presence means the dataset is complete

Vectors are stored raw (never normalised) as fixed-size float32 lists of width d_model. The
ground-truth property columns (`PROPERTY_FIELDS`, see nla_variants/data/properties.py) come after
the row's texts; datasets written before them lack them and still open.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from nla_variants.common.io import atomic_path
from nla_variants.common.schema import DatasetSidecar
from nla_variants.core.vectors import mean_direction
from nla_variants.data.properties import BY_NAME, LABEL, STORED

FORMAT_VERSION = 1
SIDECAR = DatasetSidecar.FILE
CONFIG = "config.yaml"
TRAINING_SPLITS = ("av_sft", "ar_sft")  # the rows a trial's statistics come from


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


# Ground truth per row (nla_variants/data/properties.py); derived from the row, so not part of
# the content address. Null: not defined for the row (e.g. next_token at a document's end).
PROPERTY_FIELDS = [(n, pa.string() if BY_NAME[n].kind == LABEL else pa.bool_()) for n in STORED]


def schema(d_model: int, properties: bool = True, prompt: bool = False) -> pa.Schema:
    """The shard schema; `properties: False` is the layout written before property columns;
    `prompt`: a teacher that adds what it read from the model (`teacher.next_tokens`) keeps its
    text-only explanation, the prompt reading the NLA is scored against."""
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
            *([("prompt", pa.string())] if prompt else []),
            *(PROPERTY_FIELDS if properties else []),
            ("vector", pa.list_(pa.float32(), d_model)),
        ]
    )


def write_shard(path: Path, rows: dict[str, Sequence], vectors: np.ndarray) -> None:
    """Write one shard atomically; `rows` holds every schema column except `vector` (the
    property columns all or none)."""
    d = vectors.shape[1]
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    columns = dict(rows)
    columns["vector"] = pa.FixedSizeListArray.from_arrays(flat, d)
    table = pa.Table.from_pydict(columns, schema=schema(d, "token" in rows, "prompt" in rows))
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def vector_matrix(table: pa.Table) -> np.ndarray:
    """The `vector` column as a float32 array [rows, d_model] (no per-row Python objects)."""
    col = table.column("vector").combine_chunks()
    return col.values.to_numpy().reshape(len(col), -1).astype(np.float32, copy=False)


def has_properties(path: Path) -> bool:
    """Does a finished shard hold the property columns?"""
    return set(STORED) <= set(pq.ParquetFile(path).schema_arrow.names)


def shard_rows(path: Path) -> int | None:
    """Row count of a finished shard, or None if it is missing or unreadable."""
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowInvalid):
        return None


@dataclass
class StoredDataset:
    """A complete dataset on disk: its sidecar and lazy access to its rows. `sidecar` is the
    record as written (what tests and people read); the code reads `meta`, its typed view."""

    path: Path
    sidecar: dict
    _training: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def open(cls, path: str | Path) -> StoredDataset:
        """The dataset at `path`; an incomplete or unreadable one is a one-line NLAError."""
        meta = DatasetSidecar.read(path)
        dataset = cls(Path(path), meta.as_written())
        dataset.__dict__["meta"] = meta  # already validated: the cached view
        return dataset

    @cached_property
    def meta(self) -> DatasetSidecar:
        return DatasetSidecar.parse(self.sidecar, self.path / SIDECAR)

    @property
    def shards(self) -> list[Path]:
        return [self.path / s for s in self.meta.shards]

    def table(self, split: str | None = None, columns: list[str] | None = None) -> pa.Table:
        filters = [("split", "=", split)] if split else None
        tables = [pq.read_table(s, columns=columns, filters=filters) for s in self.shards]
        return pa.concat_tables(tables, promote_options="default")  # old shards: nulls

    def has_column(self, name: str) -> bool:
        """Do the shards hold column `name` (e.g. the optional `prompt`)?"""
        return bool(self.shards) and name in pq.ParquetFile(self.shards[0]).schema_arrow.names

    def vectors(self, split: str | None = None) -> np.ndarray:
        """Raw fp32 vectors [n, d_model] of a split (all rows when split is None)."""
        return vector_matrix(self.table(split, ["vector"]))

    def training_vectors(self) -> np.ndarray:
        """The SFT splits' vectors, av_sft then ar_sft: what a trial's statistics are taken from
        (the injection centring, the mean direction FVE is measured against). One function, so
        every reader sums them in the same order and gets the same bits. Read once per opened
        dataset (a trial takes two statistics from them), and shared: never modify it."""
        if self._training is None:
            self._training = np.concatenate([self.vectors(split) for split in TRAINING_SPLITS])
        return self._training

    def training_mean(self) -> torch.Tensor:
        """The mean direction of the training vectors [d]: the predict-the-mean baseline that
        FVE and the centred reward are measured against, by a trial and by a loaded run."""
        return mean_direction(torch.from_numpy(self.training_vectors()))


@dataclass
class SplitRows:
    """One split in memory: raw vectors and their texts, aligned by row."""

    vectors: np.ndarray  # [n, d] float32, raw
    explanations: list[str | None]
    prefixes: list[str]
    example_ids: list[str]
    rendered: bool = False  # the explanations are the AV's own text (already in its format)
    # the text-only explanations the NLA is scored against, where the teacher added what it read
    # from the model (`teacher.next_tokens`); None: the explanations themselves are text-only
    prompts: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.prefixes)

    def take(self, index: Sequence[int]) -> SplitRows:
        return SplitRows(
            self.vectors[list(index)],
            [self.explanations[i] for i in index],
            [self.prefixes[i] for i in index],
            [self.example_ids[i] for i in index],
            self.rendered,
            None if self.prompts is None else [self.prompts[i] for i in index],
        )

    def with_explanations(self) -> SplitRows:
        return self.take([i for i, e in enumerate(self.explanations) if e is not None])

    def with_prompts(self) -> SplitRows:
        """These rows, then each row's text-only explanation as one more row (where the teacher
        also stated what it read from the model). An AR fit on both reads the prompt as well as
        it reads the teacher, so the prompt it is compared with is not a weakened one."""
        if self.prompts is None:
            return self
        more = [i for i, p in enumerate(self.prompts) if p is not None]
        return SplitRows(
            np.concatenate([self.vectors, self.vectors[more]]),
            self.explanations + [self.prompts[i] for i in more],
            self.prefixes + [self.prefixes[i] for i in more],
            self.example_ids + [self.example_ids[i] for i in more],
            self.rendered,
        )
