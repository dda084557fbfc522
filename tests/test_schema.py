"""The sidecar records (`nla_variants.common.schema`): what a reader gets from a file, the one-line
errors for a missing, malformed or foreign file, and that the package reads the six formats
only through them."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import yaml

import nla_variants
from nla_variants.common.errors import NLAError
from nla_variants.common.schema import (
    CheckpointSidecar,
    DatasetSidecar,
    ExportSidecar,
    FinetuneSidecar,
    Record,
    ReleaseSidecar,
    RunRecord,
)

RECORDS = [DatasetSidecar, CheckpointSidecar, RunRecord, FinetuneSidecar, ExportSidecar]
RECORDS.append(ReleaseSidecar)

CHECKPOINT = {
    "kind": "av",
    "variant": "baseline",
    "config": {"finetune": "full"},
    "model_fingerprint": "abc",
    "model_spec": "embedded",
    "layer": 20,
    "d_model": 576,
    "data_norm": 4.5,
    "metadata": {"placeholder": {"text": "@"}},
    "step": 7,
    "figures": {"steps": 4},
}
RELEASE_AV = {
    "kind": "nla_model",
    "role": "actor",
    "d_model": 64,
    "base_checkpoint": "some/model",
    "extraction_layer_index": 1,
    "extraction": {"injection_scale": "sqrt_d_model", "mse_scale": 8.0},
    "tokens": {
        "injection_char": "@",
        "injection_token_id": 5,
        "injection_left_neighbor_id": 4,
        "injection_right_neighbor_id": 6,
    },
    "prompt_templates": {"actor": "{injection_char}"},
}


def write(directory: Path, record: type[Record], data) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / record.FILE).write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


def test_a_record_reads_typed_and_keeps_what_it_does_not_type_as_written(tmp_path):
    data = {**CHECKPOINT, "zeta": 1, "alpha": {"b": 2, "a": 1}}
    meta = CheckpointSidecar.read(write(tmp_path, CheckpointSidecar, data))
    assert (meta.kind, meta.step, meta.data_norm, meta.figures) == ("av", 7, 4.5, {"steps": 4.0})
    assert meta.optimizer is None and meta.scheduler is None
    assert list(meta.as_written()) == list(data)  # the file's order, untyped keys included
    assert meta.as_written("alpha", "kind") == {"alpha": {"b": 2, "a": 1}, "kind": "av"}
    assert meta.as_written("missing") == {}
    with pytest.raises(Exception, match="frozen"):
        meta.step = 8  # a record is what the file says: read-only


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_a_missing_file_is_one_line_naming_the_file_and_the_fix(record, tmp_path):
    with pytest.raises(NLAError) as e:
        record.read(tmp_path)
    message = str(e.value)
    assert f"{tmp_path} is not a" in message and f"(no {record.FILE})" in message
    assert "fix:" in message and "\n" not in message


def test_a_malformed_record_names_the_file_and_the_field(tmp_path):
    bad = {**CHECKPOINT, "layer": "twenty"}
    with pytest.raises(NLAError) as e:
        CheckpointSidecar.read(write(tmp_path, CheckpointSidecar, bad))
    message = str(e.value)
    assert str(tmp_path / "checkpoint.yaml") in message and "(layer: " in message
    assert "\n" not in message
    (tmp_path / "checkpoint.yaml").write_text("kind: [av\n")  # not YAML
    with pytest.raises(NLAError, match="is not valid YAML") as e:
        CheckpointSidecar.read(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "checkpoint.yaml").write_text("")  # empty: every required field is missing
    with pytest.raises(NLAError, match="kind: Field required"):
        CheckpointSidecar.read(tmp_path)


def test_a_writer_is_refused_what_a_reader_would_refuse(tmp_path):
    record = {"run_id": "r", "stage": "finishing", "dataset": "/d"}
    with pytest.raises(NLAError, match="stage"):
        RunRecord.parse(record, tmp_path / RunRecord.FILE)
    record["stage"] = "finished"
    assert RunRecord.parse(record, tmp_path / RunRecord.FILE).dataset == "/d"


def test_the_dataset_record_gives_the_injection_norm_and_what_the_rows_hold(tmp_path):
    data = {
        "name": "d",
        "model": {"spec": "embedded", "fingerprint": "f"},
        "layer": 20,
        "d_model": 576,
        "tokenization": {"add_bos": True},
        "splits": {"eval": {"rows": 3, "documents": 1, "explained": 3, "extra": 0}},
        "norms": {"all": {"p50": 41.5, "mean": 40.0}},
        "shards": ["shard-00000.parquet"],
    }
    meta = DatasetSidecar.read(write(tmp_path, DatasetSidecar, data))
    assert meta.injection_norm == 41.5 and meta.add_bos and meta.vectors == "activations"
    assert meta.splits["eval"].rows == 3 and meta.diff_model is None and meta.properties is None
    del data["tokenization"]
    assert not DatasetSidecar.parse(data, "here").add_bos  # a dataset from before the BOS rule


def test_an_export_record_refuses_another_format_and_a_newer_version_by_name(tmp_path):
    with pytest.raises(NLAError, match="is not an nla_variants export"):
        ExportSidecar.read(write(tmp_path, ExportSidecar, {"format": "other", "layer": 1}))
    newer = {"format": ExportSidecar.FORMAT, "version": ExportSidecar.VERSION + 1}
    with pytest.raises(NLAError, match="newer nla_variants"):
        ExportSidecar.read(write(tmp_path, ExportSidecar, newer))


def test_a_release_record_reads_the_scale_the_layer_and_the_role(tmp_path):
    meta = ReleaseSidecar.read(write(tmp_path / "actor", ReleaseSidecar, RELEASE_AV))
    assert meta.component == "av" and meta.layer_index == 1
    assert meta.injection_scale("here") == pytest.approx(math.sqrt(64))
    critic = {**RELEASE_AV, "role": "critic", "extraction_layer_index": None, "tokens": {}}
    critic["critic"] = {"extraction_layer_index": 3}
    ar = ReleaseSidecar.read(write(tmp_path / "critic", ReleaseSidecar, critic))
    assert ar.component == "ar" and ar.layer_index == 3  # an AR needs no placeholder tokens
    for value in ("big", -1.0, None):
        bad = {**RELEASE_AV, "extraction": {"injection_scale": value}}
        with pytest.raises(NLAError, match="injection_scale .* is not a positive number"):
            ReleaseSidecar.parse(bad, "here").injection_scale("here")
    with pytest.raises(NLAError, match="is not an NLA model sidecar"):
        ReleaseSidecar.read(write(tmp_path / "x", ReleaseSidecar, {**RELEASE_AV, "kind": "x"}))
    no_char = {**RELEASE_AV, "tokens": {**RELEASE_AV["tokens"], "injection_char": None}}
    with pytest.raises(NLAError, match="has no valid tokens.injection_char"):
        ReleaseSidecar.read(write(tmp_path / "y", ReleaseSidecar, no_char))


# The release's own reader rules, written apart from ours on purpose: it checks that an export
# reads as the release reads it, so it must not share our schema.
INDEPENDENT = {"nla_variants/variants/testing.py"}


def test_no_module_names_a_sidecar_file_but_the_schema():
    """Every reader and writer finds the six files by their record's FILE, so a file's name,
    like its fields, is defined once."""
    root = Path(nla_variants.__file__).parent
    names = {r.FILE for r in RECORDS}
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if rel in INDEPENDENT or path.name == "schema.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{rel}:{node.lineno} {node.value}")
    assert not found, found
