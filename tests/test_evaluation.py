"""Which eval rows a score is computed on."""

from __future__ import annotations

import numpy as np

from nla_variants.evaluation import scored_rows
from nla_variants.training.data import SplitRows


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
