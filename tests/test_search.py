"""`nla search` on the tiny model: the AR's reading of a query ranks the dataset's activations by
cosine, on a run and on both export layouts, with precision against the stated property."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nla_variants.artifacts.loading import load, locate
from nla_variants.cli import main
from nla_variants.data.properties import load_properties
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation.faithfulness import defined, matches, stated
from nla_variants.tools.search import search
from nla_variants.training.runs import read_run_record

QUERY = 'A list item in Python code; the last word "the"'


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir, trained_run) -> Path:
    """A run both export layouts can hold (no system message, the release AR)."""
    tmp = tmp_path_factory.mktemp("search-run")
    return trained_run(tmp, tiny_model_dir, **{"av.system": "", "ar": {"variant": "release"}})


@pytest.fixture(scope="module")
def dataset(run) -> Path:
    return Path(read_run_record(run).dataset)


def test_hits_are_the_nearest_vectors_to_the_ar_reading(run, dataset):
    res = search(str(run), QUERY, str(dataset), k=7, precision="fp32")
    nla = load(locate(run))
    with torch.no_grad():
        pred = nla.ar([nla.av.render_target(QUERY)], [""])[0].float()
    ds = StoredDataset.open(dataset)
    vectors = torch.from_numpy(ds.vectors())
    cosine = torch.nn.functional.normalize(vectors, dim=-1) @ torch.nn.functional.normalize(
        pred, dim=0
    )
    ids = ds.table(None, ["example_id"]).column("example_id").to_pylist()
    want = cosine.topk(7)
    assert [h.example_id for h in res.hits] == [ids[i] for i in want.indices.tolist()]
    np.testing.assert_allclose([h.cosine for h in res.hits], want.values.numpy(), atol=1e-4)
    assert [h.rank for h in res.hits] == list(range(1, 8)) and res.rows == len(ids)


def test_precision_is_the_share_of_hits_with_the_stated_value(run, dataset):
    res = search(str(run), QUERY, str(dataset), k=20, precision="fp32")
    assert "token" in res.precision and stated("token", QUERY) == "the"
    props = load_properties(StoredDataset.open(dataset))
    for name, p in res.precision.items():
        truths = [h.properties[name] for h in res.hits]
        scored = [t for t in truths if defined(name, t)]
        assert p.scored == len(scored)
        assert p.precision == pytest.approx(np.mean([matches(name, p.stated, t) for t in scored]))
        everywhere = [t for t in props.values[name] if defined(name, t)]
        assert p.chance == pytest.approx(np.mean([matches(name, p.stated, t) for t in everywhere]))


def test_a_split_and_both_export_layouts_give_the_same_hits(run, dataset, tmp_path, capsys):
    public, own = tmp_path / "public", tmp_path / "own"
    assert main(["export", str(run), str(public), "--layout", "public", "-q"]) == 0
    assert main(["export", str(run), str(own), "-q"]) == 0
    capsys.readouterr()
    out = tmp_path / "hits.json"
    argv = ["--query", QUERY, "--dataset", str(dataset), "--k", "5", "--precision", "fp32"]
    argv += ["--split", "eval"]
    results = []
    for nla in (run, own, public):
        assert main(["search", str(nla), *argv, "--out", str(out), "-q"]) == 0
        results.append(json.loads(out.read_text()))
    assert "nearest of" in capsys.readouterr().out
    ids = [[h["example_id"] for h in r["hits"]] for r in results]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 5
    assert {h["split"] for h in results[0]["hits"]} == {"eval"}
