"""Activation diffing on the tiny model: the fine-tune that makes the second model, difference
vectors checked against an independent `output_hidden_states` forward, and the refusals (among
them a `finetune:` second model that is not built yet: preparing never trains)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.config import CorpusConfig, PrepareConfig, load_config
from nla_variants.data.prepare import prepare
from nla_variants.data.properties import load_properties
from nla_variants.data.store import StoredDataset
from nla_variants.target import resolve_model
from nla_variants.training import finetune as finetune_mod
from nla_variants.training.finetune import FinetuneConfig, finetune_target, with_built_diff_model

LAYER = 2  # the write_config fixture extracts at layer 2 of the tiny model's 4


def _finetune_cfg(model_dir: Path, root: Path, **overrides) -> FinetuneConfig:
    base = {
        "name": "tiny-narrative",
        "model": str(model_dir),
        "corpus": CorpusConfig(source="builtin"),
        "genre": "narrative",
        "max_documents": 16,
        "seq_len": 32,
        "steps": 4,
        "batch_size": 2,
        "lr": 1e-3,
        "warmup_steps": 1,
        "root": str(root),
    }
    return FinetuneConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, tiny_model_dir):
    """The tiny model after a 4-step fine-tune on builtin narrative (bf16 autocast where the CPU
    has it), plus its config, so tests can rerun it."""
    root = tmp_path_factory.mktemp("finetuned")
    cfg = _finetune_cfg(tiny_model_dir, root)
    return cfg, finetune_target(cfg, progress=False)


@pytest.fixture
def diff_config(write_config):
    """`diff_config(tmp, model_dir, diff_model)`: a prepare config that diffs against a model."""

    def write(tmp_path: Path, model_dir: Path, diff_model: str) -> Path:
        return write_config(tmp_path, model_dir, target={"diff_model": diff_model})

    return write


def test_finetune_changes_weights_saves_safetensors_and_rerun_is_a_cache_hit(tuned, tiny_model_dir):
    cfg, first = tuned
    assert not first.cache_hit and first.path.parent == Path(cfg.root)
    assert first.meta.genre == "narrative" and first.meta.steps == 4
    assert first.meta.tokens_seen > 0 and np.isfinite(first.meta.loss_last)
    assert first.meta.loss_last < first.meta.loss_first  # it learnt something
    files = {p.name for p in first.path.iterdir()}
    assert {"config.json", "model.safetensors", "finetune.yaml"} <= files
    assert "tokenizer.json" in files or "tokenizer_config.json" in files
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in files)

    base, new = (
        load_file(tiny_model_dir / "model.safetensors"),
        load_file(first.path / "model.safetensors"),
    )
    assert base.keys() == new.keys()
    assert all(new[k].dtype == torch.float32 and torch.isfinite(new[k]).all() for k in new)
    changed = [k for k in base if not torch.equal(base[k], new[k])]
    assert len(changed) >= len(base) // 2, changed  # a real update, not one stray tensor

    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(first.path)  # loadable as a plain checkpoint
    AutoTokenizer.from_pretrained(first.path)
    src = resolve_model(str(first.path))
    assert src.kind == "local" and src.fingerprint != resolve_model(str(tiny_model_dir)).fingerprint

    mtime = (first.path / "model.safetensors").stat().st_mtime_ns
    again = finetune_target(cfg, progress=False)
    assert again.cache_hit and again.path == first.path
    assert (first.path / "model.safetensors").stat().st_mtime_ns == mtime
    assert again.meta.address == first.meta.address

    other = finetune_target(_finetune_cfg(tiny_model_dir, cfg.root, genre="code"), progress=False)
    assert not other.cache_hit and other.path != first.path


def test_finetune_unknown_genre_is_an_error(tmp_path, tiny_model_dir):
    cfg = _finetune_cfg(tiny_model_dir, tmp_path / "ft", genre="poetry")
    with pytest.raises(NLAError, match="no document of genre 'poetry'"):
        finetune_target(cfg, progress=False)
    assert not (tmp_path / "ft").exists()


def _hidden(model_dir: Path, ids: list[int]) -> np.ndarray:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[LAYER][0, -1].numpy()


def test_diff_vectors_are_second_minus_target_activations(
    tmp_path, tiny_model_dir, tuned, diff_config
):
    from transformers import AutoTokenizer

    cfg_ft, ft = tuned
    cfg = load_config(diff_config(tmp_path, tiny_model_dir, str(ft.path)), PrepareConfig)
    result = prepare(cfg, progress=False)
    side = result.sidecar
    assert side["vectors"] == "diff" and side["layer"] == LAYER
    assert side["model"]["fingerprint"] == resolve_model(str(tiny_model_dir)).fingerprint
    assert side["diff_model"]["spec"] == str(ft.path) and side["diff_model"]["d_model"] == 64
    assert side["diff_model"]["fingerprint"].startswith("local-sha:")

    ds = StoredDataset.open(result.path)
    rows = ds.table().to_pylist()
    assert len(rows) == side["counts"]["rows"] == 72
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    for r in rows[::17]:
        ids = tok(r["prefix"], add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert len(ids) == r["token_position"]
        want = _hidden(ft.path, ids) - _hidden(tiny_model_dir, ids)
        got = np.array(r["vector"], np.float32)
        assert np.linalg.norm(want) > 1e-2  # the fine-tune moved this activation
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)

    # explanations and rows are those of the plain dataset; only the vectors differ
    plain_cfg = cfg.model_copy(
        update={"target": cfg.target.model_copy(update={"diff_model": None})}
    )
    plain = prepare(plain_cfg, progress=False)
    assert plain.path != result.path and plain.sidecar["vectors"] == "activations"
    assert "diff_model" not in plain.sidecar
    plain_rows = StoredDataset.open(plain.path).table().to_pylist()
    assert [(r["example_id"], r["explanation"]) for r in plain_rows] == [
        (r["example_id"], r["explanation"]) for r in rows
    ]
    assert not np.allclose(ds.vectors(), StoredDataset.open(plain.path).vectors())
    # ground truth: the genre the second model was tuned on, stored and recomputed alike
    assert {r["tuned_genre"] for r in rows} == {"narrative"}
    assert {r["tuned_genre"] for r in plain_rows} == {None}
    side.pop("properties")  # as a dataset written before the property columns
    on_demand = load_properties(StoredDataset(result.path, side))
    assert on_demand.computed and set(on_demand.values["tuned_genre"]) == {"narrative"}

    assert prepare(cfg, progress=False).cache_hit
    # naming the fine-tune by its config finds the same checkpoint, hence the same dataset
    ft_yaml = tmp_path / "ft.yaml"
    ft_yaml.write_text(yaml.safe_dump(cfg_ft.model_dump(mode="json")))
    by_config = load_config(
        diff_config(tmp_path, tiny_model_dir, f"finetune:{ft_yaml}"), PrepareConfig
    )
    again = prepare(with_built_diff_model(by_config), progress=False)
    assert again.cache_hit and again.path == result.path


def _cli_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nla: error: ") and "\n" not in err and "fix:" in err
    return err


def test_a_finetune_not_built_yet_is_one_line_and_trains_nothing(
    tmp_path, tiny_model_dir, capsys, monkeypatch, diff_config
):
    def trains(*args, **kwargs):
        raise AssertionError("preparing a dataset started a fine-tune")

    monkeypatch.setattr(finetune_mod, "finetune_target", trains)
    monkeypatch.setattr(finetune_mod, "_train", trains)
    ft_yaml = tmp_path / "ft.yaml"
    ft_cfg = _finetune_cfg(tiny_model_dir, tmp_path / "finetuned")
    ft_yaml.write_text(yaml.safe_dump(ft_cfg.model_dump(mode="json")))
    path = diff_config(tmp_path, tiny_model_dir, f"finetune:{ft_yaml}")

    err = _cli_error(["prepare", str(path), "-q"], capsys)
    assert f"target.diff_model: the fine-tune of {ft_yaml} is not built yet" in err
    assert f"run `nla finetune {ft_yaml}` first" in err
    # prepare itself takes the second model as an input, never a fine-tune config
    with pytest.raises(NLAError, match="is a fine-tune config, not a model"):
        prepare(load_config(path, PrepareConfig), progress=False)
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "finetuned").exists()


def test_same_weights_as_the_target_is_an_error(tmp_path, tiny_model_dir, capsys, diff_config):
    path = diff_config(tmp_path, tiny_model_dir, str(tiny_model_dir))
    err = _cli_error(["prepare", str(path), "-q"], capsys)
    assert "same weights as target.model" in err and "would be zero" in err

    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")  # another path, same content
    err = _cli_error(["prepare", str(path), "-q", "--set", f"target.diff_model={copy}"], capsys)
    assert "same weights as target.model" in err

    # a different config.json passes the fingerprint check; the loaded weights still match
    cfg = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**cfg, "note": "renamed"}))
    err = _cli_error(["prepare", str(path), "-q", "--set", f"target.diff_model={copy}"], capsys)
    assert "exactly the weights of target.model" in err
    assert not (tmp_path / "datasets").exists()


@pytest.mark.parametrize(
    ("change", "match"),
    [({"hidden_size": 32}, "has d_model 32 but target.model has 64"), ({"layers": 3}, "3 blocks")],
)
def test_mismatched_architecture_is_one_line_and_writes_nothing(
    tmp_path, tiny_model_dir, capsys, change, match, diff_config
):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=change.get("hidden_size", 64),
        intermediate_size=64,
        num_hidden_layers=change.get("layers", 4),
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    other = tmp_path / "other"
    LlamaForCausalLM(config).save_pretrained(other, safe_serialization=True)
    tok.save_pretrained(other)
    path = diff_config(tmp_path, tiny_model_dir, str(other))
    err = _cli_error(["prepare", str(path), "-q"], capsys)
    assert match in err and "nla finetune" in err
    assert not (tmp_path / "datasets").exists()


def test_different_tokenizer_is_an_error(tmp_path, tiny_model_dir, tuned, capsys, diff_config):
    _, ft = tuned
    other = shutil.copytree(ft.path, tmp_path / "retok")
    state = json.loads((other / "tokenizer.json").read_text())
    state["model"]["merges"] = state["model"]["merges"][:-100]  # same vocab, other ids for text
    (other / "tokenizer.json").write_text(json.dumps(state))
    path = diff_config(tmp_path, tiny_model_dir, str(other))
    err = _cli_error(["prepare", str(path), "-q"], capsys)
    assert "different tokenizer" in err
    assert not (tmp_path / "datasets").exists()
