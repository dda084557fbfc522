"""Truncation sampling and document-disjoint splits."""

from __future__ import annotations

from collections import Counter

from nla_variants.data.documents import Document
from nla_variants.data.sampling import assign_splits, plan_documents, sample_prefix_lengths

FRACTIONS = {"av_sft": 0.4, "ar_sft": 0.4, "rl": 0.1, "eval": 0.1}


def _docs(n: int) -> list[Document]:
    return [Document(f"d{i}", "x" * 10) for i in range(n)]


def test_prefix_lengths_in_range_distinct_sorted_and_seeded():
    for n_tokens in (8, 20, 500):
        got = sample_prefix_lengths(n_tokens, 4, 8, 128, seed=1, doc_id="a")
        assert len(got) == min(4, min(n_tokens, 128) - 8 + 1)
        assert list(got) == sorted(set(got))
        assert all(8 <= p <= min(n_tokens, 128) for p in got)
    assert sample_prefix_lengths(500, 4, 8, 128, 1, "a") == sample_prefix_lengths(
        500, 4, 8, 128, 1, "a"
    )
    assert sample_prefix_lengths(500, 4, 8, 128, 2, "a") != sample_prefix_lengths(
        500, 4, 8, 128, 1, "a"
    )
    assert sample_prefix_lengths(5, 4, 8, 128, 1, "a") == ()


def test_prefix_lengths_cover_the_whole_range_uniformly():
    seen = Counter()
    for i in range(4000):
        seen.update(sample_prefix_lengths(40, 1, 10, 128, 0, f"doc{i}"))
    assert set(seen) == set(range(10, 41))
    assert max(seen.values()) < 2.0 * min(seen.values())


def test_splits_are_exact_and_disjoint_by_document():
    docs = _docs(1000)
    splits = assign_splits(docs, FRACTIONS, seed=0)
    assert Counter(splits) == {"av_sft": 400, "ar_sft": 400, "rl": 100, "eval": 100}
    plans = plan_documents(
        docs,
        [100] * 1000,
        positions_per_doc=3,
        min_prefix=8,
        max_tokens=64,
        fractions=FRACTIONS,
        seed=0,
    )
    by_doc = {}
    for p in plans:
        assert by_doc.setdefault(p.doc.doc_id, p.split) == p.split
        assert len(p.prefix_lengths) == 3


def test_a_documents_plan_does_not_depend_on_the_rest_of_the_corpus():
    docs = _docs(50)
    small = plan_documents(
        docs[:10],
        [64] * 10,
        positions_per_doc=2,
        min_prefix=4,
        max_tokens=64,
        fractions={"eval": 1.0},
        seed=3,
    )
    large = plan_documents(
        docs,
        [64] * 50,
        positions_per_doc=2,
        min_prefix=4,
        max_tokens=64,
        fractions={"eval": 1.0},
        seed=3,
    )
    assert [p.prefix_lengths for p in small] == [p.prefix_lengths for p in large[:10]]


def test_too_short_documents_are_skipped():
    plans = plan_documents(
        _docs(3),
        [3, 50, 7],
        positions_per_doc=2,
        min_prefix=8,
        max_tokens=64,
        fractions=FRACTIONS,
        seed=0,
    )
    assert [p.doc.doc_id for p in plans] == ["d1"]
