"""Which eval rows a score is computed on."""

from __future__ import annotations

import numpy as np

from nla_variants.data.store import SplitRows
from nla_variants.evaluation.evaluation import scored_rows


def _split(n: int) -> SplitRows:
    """A split in corpus order: the first half one genre, the second half another."""
    ids = [f"{'narrative' if i < n // 2 else 'code'}-{i}" for i in range(n)]
    return SplitRows(np.zeros((n, 4), np.float32), [None] * n, ids, ids)


def test_a_sample_spreads_over_the_split_and_is_the_same_for_every_call():
    rows = _split(1000)
    picked = scored_rows(rows, 64)
    assert len(picked) == 64 and len(set(picked.example_ids)) == 64
    assert picked.example_ids == scored_rows(rows, 64).example_ids  # every trial, every seed
    order = [int(i.split("-")[1]) for i in picked.example_ids]
    assert order == sorted(order)  # split order kept
    code = sum(i.startswith("code") for i in picked.example_ids)
    assert 16 <= code <= 48  # not the first 64 rows, which are all one genre


def test_a_small_split_is_scored_whole():
    rows = _split(10)
    assert scored_rows(rows, 64).example_ids == rows.example_ids


def test_rows_that_kept_their_prompts_carry_them_through_a_sample_and_into_the_ars_rows():
    rows = _split(10)
    rows.explanations = [f"teacher {i}\nThe model expects next: x" for i in range(10)]
    rows.prompts = [f"teacher {i}" if i != 3 else None for i in range(10)]
    picked = scored_rows(rows, 4)
    assert picked.prompts == [rows.prompts[int(i.split("-")[1])] for i in picked.example_ids]
    both = rows.with_prompts()  # each explained row, then its text-only explanation as a row
    assert len(both) == 19 and both.prompts is None
    assert both.explanations[10:] == [p for p in rows.prompts if p is not None]
    kept = [e for e, p in zip(rows.example_ids, rows.prompts, strict=True) if p is not None]
    assert both.example_ids[10:] == kept
    assert both.vectors.shape == (19, 4)
    assert _split(3).with_prompts().example_ids == _split(3).example_ids  # nothing kept: as is
