"""Corpus sources: .txt / .jsonl / .parquet files and a local Hugging Face `datasets` source."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nla_variants.common.errors import NLAError
from nla_variants.config import CorpusConfig, HFDatasetConfig
from nla_variants.data.corpus import load_corpus, manifest_hash

ROWS = [
    {"body": f"Document number {i}. " * 20, "kind": "narrative" if i % 2 else "code"}
    for i in range(10)
]


@pytest.fixture
def files(tmp_path):
    (tmp_path / "a.txt").write_text("A plain text document. " * 20)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "c.parquet")
    return tmp_path


def test_files_source_reads_all_types_with_columns(files):
    cfg = CorpusConfig(
        source="files",
        paths=[str(files / n) for n in ("a.txt", "b.jsonl", "c.parquet")],
        text_column="body",
        genre_column="kind",
    )
    docs = load_corpus(cfg)
    assert len(docs) == 21
    assert docs[0].doc_id == "a.txt:0" and docs[0].genre is None
    assert {d.genre for d in docs[1:]} == {"narrative", "code"}
    assert len({d.doc_id for d in docs}) == 21


def test_max_documents_is_a_seeded_ordered_sample(files):
    cfg = CorpusConfig(
        source="files", paths=[str(files / "b.jsonl")], text_column="body", max_documents=4
    )
    a, b = load_corpus(cfg, seed=0), load_corpus(cfg, seed=0)
    assert [d.doc_id for d in a] == [d.doc_id for d in b]
    ids = [int(d.doc_id.split(":")[1]) for d in a]
    assert ids == sorted(ids) and len(ids) == 4
    assert manifest_hash(a) == manifest_hash(b)
    assert [d.doc_id for d in load_corpus(cfg, seed=1)] != [d.doc_id for d in a]


def test_manifest_changes_when_a_file_changes(files):
    cfg = CorpusConfig(source="files", paths=[str(files / "a.txt")])
    before = manifest_hash(load_corpus(cfg))
    (files / "a.txt").write_text("Another text entirely. " * 20)
    assert manifest_hash(load_corpus(cfg)) != before


def test_hf_datasets_source_on_local_json(files):
    cfg = CorpusConfig(
        source="hf",
        hf=HFDatasetConfig(name="json", data_files=[str(files / "b.jsonl")], streaming=True),
        text_column="body",
        genre_column="kind",
        max_documents=5,
    )
    docs = load_corpus(cfg)
    assert len(docs) == 5 and docs[0].text == ROWS[0]["body"]
    cfg.hf.streaming = False
    assert len(load_corpus(cfg)) == 5


@pytest.mark.parametrize(
    ("paths", "column", "match"),
    [
        (["missing.txt"], "text", "does not exist"),
        (["b.jsonl"], "text", "has no column 'text'"),
        (["data.csv"], "text", "unsupported type"),
    ],
)
def test_file_errors(files, paths, column, match):
    (files / "data.csv").write_text("a,b\n")
    cfg = CorpusConfig(source="files", paths=[str(files / p) for p in paths], text_column=column)
    with pytest.raises(NLAError, match=match):
        load_corpus(cfg)


def test_bad_jsonl_line(files):
    (files / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n')
    with pytest.raises(NLAError, match="bad.jsonl:2 is not valid JSON"):
        load_corpus(CorpusConfig(source="files", paths=[str(files / "bad.jsonl")]))
