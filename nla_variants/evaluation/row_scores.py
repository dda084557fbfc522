"""Per-row evaluation scores: what every evaluation's means are means of, one row per eval vector.

Why: the trials of a study score the same eval rows, so two presets can be compared row by row,
which resolves far smaller differences than comparing means (`nla compare`). `evaluate` fills a
`RowScores`; a trial writes it as `eval_rows.parquet` beside its run record and to MLflow, and
`nla evaluate` writes the same file.

Columns: `example_id`, `genre` (where the rows' properties are known); the normalised MSEs the FVEs
are ratios of (`base_mse`, the mean-direction baseline; `roundtrip_mse`, `roundtrip_shuffled_mse`,
`teacher_mse`, `prompt_mse`; NaN where a row has no such reading), each row's share of the FVE
(`*_fve` = 1 - mse / mean(base_mse), whose mean is the FVE) and the cosine (`*_cos` = 1 - mse/2);
the AV's summed NLL of the teacher explanation with its own and a shuffled vector and the token
count (`nll_real`, `nll_shuffled`, `nll_tokens`); `tag_failure`; per property P, `faithful_P`
and `contradict_P` (True/False on the rows P is scored on, null elsewhere); and the AV's
`explanation` (null where its tag never closed), so another AR, or a rewrite of the text, can
score it again later (`nla compare --cross`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from nla_variants.common.io import atomic_path

FILE = "eval_rows.parquet"
READINGS = ("roundtrip", "roundtrip_shuffled", "teacher", "prompt")
FORMAT_VERSION = "1"
TEXT = ("example_id", "genre", "explanation")  # the columns that are not scores


class RowScores:
    """Columns of per-row scores, aligned with `example_ids`."""

    def __init__(self, example_ids: Sequence[str]) -> None:
        self.example_ids = list(example_ids)
        self.values: dict[str, np.ndarray] = {}  # float columns, NaN where missing
        self.flags: dict[str, list] = {}  # labels and booleans, None where missing

    def __len__(self) -> int:
        return len(self.example_ids)

    def put(self, name: str, index: Iterable[int], values: torch.Tensor) -> None:
        """Set `name` at the rows `index` (the others stay NaN)."""
        column = self.values.setdefault(name, np.full(len(self), np.nan))
        column[list(index)] = values.detach().float().cpu().numpy()

    def put_nll(self, index: Sequence[int], nll: torch.Tensor) -> None:
        """`nll_rows` output [len(index), 3] (real, shuffled, tokens)."""
        for j, name in enumerate(("nll_real", "nll_shuffled", "nll_tokens")):
            self.put(name, index, nll[:, j])

    def table(self) -> pa.Table:
        """The stored columns plus each reading's FVE share and cosine."""
        columns: dict[str, object] = {"example_id": self.example_ids}
        columns["genre"] = self.flags.get("genre", [None] * len(self))
        columns.update(self.values)
        base = self.values.get("base_mse")
        for reading in READINGS:
            mse = self.values.get(f"{reading}_mse")
            if mse is None or base is None:
                continue
            have = ~np.isnan(mse)
            denominator = base[have].mean() if have.any() else np.nan
            columns[f"{reading}_fve"] = 1.0 - mse / max(denominator, 1e-12)
            columns[f"{reading}_cos"] = 1.0 - mse / 2.0
        columns.update({k: v for k, v in self.flags.items() if k != "genre"})
        if "explanation" in self.flags:  # last: the text after the scores
            columns["explanation"] = columns.pop("explanation")
        meta = {b"nla.row_scores": FORMAT_VERSION.encode()}
        return pa.Table.from_pydict(columns).replace_schema_metadata(meta)

    def write(self, path: str | Path) -> Path:
        """Write atomically as Parquet (a temp file, then rename)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            pq.write_table(self.table(), tmp)
        return path


def read_row_scores(path: str | Path) -> pa.Table:
    """A per-row score file, as written by `RowScores.write`."""
    return pq.read_table(path)
