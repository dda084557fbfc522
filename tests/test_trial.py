"""run_trial on the tiny model: the one training path, its MLflow record, resume, and the CLI."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from nla_variants.cli import main
from nla_variants.config import TrialConfig, load_config
from nla_variants.training.experiment import flatten, run_trial

FAKE_SECRET = "fake-secret-value-0123456789"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_model_dir, trial_config):
    tmp = tmp_path_factory.mktemp("trial")
    path = trial_config(tmp, tiny_model_dir, **{"train.av_sft.checkpoint_every": 2})
    cfg = load_config(path, TrialConfig)
    mp = pytest.MonkeyPatch()
    mp.setenv("ANTHROPIC_API_KEY", FAKE_SECRET)
    try:
        metrics = run_trial(cfg, progress=False)
    finally:
        mp.undo()
    return tmp, cfg, metrics


def test_run_trial_returns_the_evaluation_metrics(finished):
    _, _, m = finished
    for key in (
        "eval/ar_teacher_fve",
        "eval/ar_teacher_shuffled_fve",
        "eval/roundtrip_fve",
        "eval/roundtrip_shuffled_fve",
        "eval/roundtrip_gap",
        "eval/quote_rate",
        "eval/length_mean",
        "eval/tag_failure_rate",
        "av_sft/tokens_per_s",
        "ar_sft/tokens_per_s",
    ):
        assert isinstance(m[key], float), key
    assert m["av_sft/steps"] == 3 and m["ar_sft/steps"] == 3
    assert 0.0 <= m["eval/tag_failure_rate"] <= 1.0
    assert m["eval/eval_rows"] == 6


def test_the_mlflow_run_holds_params_step_metrics_tags_and_artifacts(finished):
    tmp, cfg, m = finished
    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    run = client.get_run(m["run_id"])
    assert run.data.params["train.av_sft.lr"] == str(cfg.train.av_sft.lr)
    assert run.data.params["av.variant"] == "baseline"
    assert run.data.tags["ar.variant"] == "baseline"
    history = client.get_metric_history(m["run_id"], "av_sft-train/loss")
    assert len(history) == 3
    assert run.data.metrics["eval/roundtrip_fve"] == pytest.approx(m["eval/roundtrip_fve"])
    names = {a.path for a in client.list_artifacts(m["run_id"])}
    assert {"config.yaml", "samples.json", "checkpoints"} <= names
    ckpt = {a.path for a in client.list_artifacts(m["run_id"], "checkpoints/av_checkpoint")}
    assert "checkpoints/av_checkpoint/weights.safetensors" in ckpt
    assert "checkpoints/av_checkpoint/checkpoint.yaml" in ckpt
    local = Path(client.download_artifacts(m["run_id"], "samples.json", str(tmp)))
    samples = yaml.safe_load(local.read_text())
    assert set(samples["columns"]) >= {"prefix_end", "teacher_explanation", "av_explanation", "fve"}
    # the per-row scores the means are over, in MLflow and beside the run record
    assert "eval_rows.parquet" in names
    rows = pq.read_table(client.download_artifacts(m["run_id"], "eval_rows.parquet", str(tmp)))
    assert rows.num_rows == m["eval/eval_rows"] == 6
    shares = rows.column("roundtrip_fve").to_numpy()
    assert shares.mean() == pytest.approx(m["eval/roundtrip_fve"], abs=1e-5)
    assert rows.equals(pq.read_table(Path(cfg.output_dir) / m["run_id"] / "eval_rows.parquet"))


def test_no_secret_reaches_params_or_artifacts(finished):
    tmp, cfg, m = finished
    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    run = client.get_run(m["run_id"])
    assert FAKE_SECRET not in str(run.data.params) + str(run.data.tags)
    out = Path(client.download_artifacts(m["run_id"], "", str(tmp / "all")))
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in (".yaml", ".json"):
            assert FAKE_SECRET not in f.read_text()
    assert flatten({"teacher": {"api_key": "x", "max_tokens": 3}}) == {"teacher.max_tokens": 3}


def test_resume_continues_from_the_checkpoint_step(finished, tiny_model_dir, trial_config):
    tmp, cfg, m = finished
    ckpt = Path(cfg.output_dir) / m["run_id"] / "av_checkpoint"
    assert yaml.safe_load((ckpt / "checkpoint.yaml").read_text())["step"] == 3
    resumed = load_config(
        trial_config(tmp, tiny_model_dir),
        TrialConfig,
        [
            f"train.av_sft.resume_from={ckpt}",
            "train.av_sft.steps=5",
            "train.ar_sft.steps=1",
        ],
    )
    metrics = run_trial(resumed, progress=False)
    assert metrics["av_sft/steps"] == 5
    history = MlflowClient(cfg.mlflow.tracking_uri).get_metric_history(
        metrics["run_id"], "av_sft-train/loss"
    )
    assert len(history) == 2


def test_trials_nest_under_an_active_parent_run(tmp_path, tiny_model_dir, trial_config):
    cfg = load_config(
        trial_config(tmp_path, tiny_model_dir),
        TrialConfig,
        [
            "train.av_sft.steps=1",
            "train.ar_sft.steps=1",
            "eval.max_samples=2",
            "mlflow.log_checkpoints=false",
        ],
    )
    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment(cfg.mlflow.experiment)
    with mlflow.start_run(run_name="sweep") as parent:
        child = run_trial(cfg, progress=False)["run_id"]
    run = MlflowClient(cfg.mlflow.tracking_uri).get_run(child)
    assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_cli_train_and_its_bad_inputs(tmp_path, tiny_model_dir, capsys, trial_config):
    path = trial_config(
        tmp_path,
        tiny_model_dir,
        **{"train.av_sft.steps": 1, "train.ar_sft.steps": 1, "eval.max_samples": 2},
    )
    assert main(["train", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "eval/roundtrip_fve" in out and "eval/faithful_mean" in out
    assert "eval/faithful_" not in out.replace("eval/faithful_mean", "")  # MLflow has them
    for override, message in [
        ("av.variant=nope", "unknown av variant 'nope' (fix: use one of: baseline"),
        ("ar.depth=3", "ar (baseline): depth: unknown key"),
        ("train.av_sft.lr=0", "train.av_sft.lr: Input should be greater than 0"),
        ("train.av_sft.resume_from=/no/ckpt", "/no/ckpt is not a checkpoint"),
    ]:
        assert main(["train", str(path), "-q", "--set", override]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("nla: error:") and message in err and "\n" not in err


def test_av_gap_check_keeps_the_best_and_the_ar_reads_av_text(
    tmp_path, tiny_model_dir, trial_config
):
    """The AV warm start's held-out NLL gap runs every step (Lightning's validation loop), the
    best weights are kept, and the AR warm start reads the AV's own explanations too."""
    cfg = load_config(
        trial_config(tmp_path, tiny_model_dir),
        TrialConfig,
        [
            "train.av_sft.eval_every=1",
            "train.av_sft.eval_samples=4",
            "train.av_sft.keep_best=true",
            "train.ar_sft.av_text=0.5",
            "train.ar_sft.av_text_rows=6",
            "eval.max_new_tokens=24",
            "mlflow.log_checkpoints=false",
        ],
    )
    m = run_trial(cfg, progress=False)
    client = MlflowClient(cfg.mlflow.tracking_uri)
    gaps = [x.value for x in client.get_metric_history(m["run_id"], "av_sft-val/nll_gap")]
    assert len(gaps) == 3
    assert m["av_sft/best_nll_gap"] == pytest.approx(max(gaps))
    assert m["av_sft/best_step"] == 1 + gaps.index(max(gaps))
    assert 0 <= m["ar_sft/av_text_rows"] <= 6
    assert "eval/av_nll_gap" in m and "eval/roundtrip_fve_raw" in m


def test_an_ar_warm_start_of_only_the_ridge_readout_trains_and_is_cached(
    tmp_path, tiny_model_dir, trial_config
):
    """ar_sft.steps 0 with a ridge penalty: no SGD, the head fitted in closed form on teacher
    rows plus the AV's own text; the result is cached like any warm start."""
    overrides = [
        "train.ar_sft.steps=0",
        "train.ar_sft.ridge=0.1",
        "train.ar_sft.ridge_rows=10",
        "train.ar_sft.av_text=0.5",
        "train.ar_sft.av_text_rows=4",
        "eval.max_new_tokens=24",
        "mlflow.log_checkpoints=false",
    ]
    cfg = load_config(trial_config(tmp_path, tiny_model_dir), TrialConfig, overrides)
    m = run_trial(cfg, progress=False)
    assert m["ar_sft/steps"] == 0
    assert 10 <= m["ar_sft/ridge_rows"] <= 14
    assert m["ar_sft/ridge_train_fve"] > 0
    again = run_trial(cfg, progress=False)
    assert again["ar_sft/cache_hit"] == 1.0
    assert again["eval/ar_teacher_fve"] == pytest.approx(m["eval/ar_teacher_fve"])
    # the AV's text is kept beside the cache: another AR on the same AV does not regenerate it
    (memo,) = (Path(cfg.output_dir).parent / "warm_starts").glob("av_text-*.json")
    other = [*overrides, "train.ar_sft.ridge=0.2"]  # a different AR on the same AV
    stamp = memo.stat().st_mtime_ns
    m2 = run_trial(load_config(trial_config(tmp_path, tiny_model_dir), TrialConfig, other))
    assert "ar_sft/cache_hit" not in m2 and m2["ar_sft/av_text_rows"] == m["ar_sft/av_text_rows"]
    assert memo.stat().st_mtime_ns == stamp


def test_ar_batches_mix_av_text_at_the_share_and_never_re_render_it(tmp_path):
    import numpy as np

    from nla_variants.data.store import SplitRows
    from nla_variants.training.data import NLADataModule
    from nla_variants.training.warm_start import ARWarmStart

    def rows(n: int, text: str, rendered: bool) -> SplitRows:
        ids = [f"{text}{i}" for i in range(n)]
        return SplitRows(np.zeros((n, 4), np.float32), [text] * n, ids, ids, rendered)

    data = NLADataModule(None, "ar_sft", 16, seed=0, extra=rows(10, "av", True), extra_share=0.25)
    data.rows = rows(200, "teacher", False)
    batches = list(data.train_dataloader())
    share = np.mean([r for b in batches for r in b["rendered"]])
    assert 0.18 < share < 0.32  # 210 draws at 0.25
    module = ARWarmStart(torch.nn.Linear(1, 1), 1e-3, 0.0, 0, 1, render=lambda t: f"<{t}>")
    texts = module._explanations(batches[0])
    for text, rendered in zip(texts, batches[0]["rendered"], strict=True):
        assert text == ("av" if rendered else "<teacher>")


def test_every_evaluation_scores_faithfulness_and_logs_it(finished):
    _, cfg, m = finished
    run = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri).get_run(m["run_id"])
    for key in ("eval/faithful_token", "eval/contradict_token", "eval/faithful_token_shuffled"):
        assert 0.0 <= m[key] <= 1.0, key
        assert run.data.metrics[key] == pytest.approx(m[key]), key
    assert "eval/faithful_mean" in run.data.metrics and "eval/contradict_mean" in m


def test_nla_evaluate_rescores_a_run_as_its_trial_did(finished, tmp_path, capsys):
    import json

    _, cfg, m = finished
    run_dir = Path(cfg.output_dir) / m["run_id"]
    out = tmp_path / "report.json"
    args = ["evaluate", str(run_dir), "--samples", "6", "--precision", "fp32", "--out", str(out)]
    assert main([*args, "-q"]) == 0
    report = json.loads(out.read_text())
    for key in ("roundtrip_fve", "ar_teacher_fve", "faithful_token", "contradict_token"):
        assert report["metrics"][key] == pytest.approx(m[f"eval/{key}"], abs=1e-5), key
    assert any(r["property"] == "token" for r in report["faithfulness"])
    assert "faithful / contradict" in capsys.readouterr().out
    again = pq.read_table(tmp_path / "report.eval_rows.parquet")  # the trial's file, again
    trial = pq.read_table(run_dir / "eval_rows.parquet")
    assert again.column("example_id").equals(trial.column("example_id"))
    np.testing.assert_allclose(
        again.column("roundtrip_mse").to_numpy(), trial.column("roundtrip_mse").to_numpy(), 1e-4
    )
    assert main(["evaluate", str(run_dir), "--samples", "1"]) == 2
    assert main(["evaluate", str(run_dir), "--dataset", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "below 2" in err[0] and "not a complete dataset" in err[1]


# -- the warm-start cache -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "where", "keys"),
    [
        ([], ("ds-0123", "32-true", "cpu"), ("6aa41e8474691d7e", "fb41ecfe434c57d7")),
        (
            [
                "av.variant=structured",
                "av.fields=topic,next",
                "ar.variant=small",
                "ar.n_layers=1",
                "train.ar_sft.ridge=0.1",
                "train.ar_sft.av_text=0.5",
                "train.av_sft.checkpoint_every=5",
                "seed=3",
            ],
            ("ds-0123", "bf16-mixed", "cuda"),
            ("0a2bb37a41429e15", "cd8f3caf0244017b"),
        ),
    ],
)
def test_warm_start_cache_keys_are_unchanged(overrides, where, keys):
    """Existing caches keep hitting: these keys were computed by the code before the trial's
    variant sections were typed (version pinned, so a release does not move them)."""
    from nla_variants.training.warm_cache import WarmStartCache

    cfg = load_config(None, TrialConfig, overrides)
    cache = WarmStartCache(Path("cache"), *where, cfg.seed, version="0.0.0-test")
    av = cache.key("av", cfg.av, cfg.train.av_sft)
    schema = {"fields": ["topic", "next"], "max_field_words": 64} if overrides else None
    ar = cache.key("ar", cfg.ar, cfg.train.ar_sft, {"schema": schema, "av": av})
    assert (av, ar) == keys


def test_warm_start_cache_lookup_and_store(tmp_path, tiny_model_dir):
    from nla_variants.target import resolve_model
    from nla_variants.training.warm_cache import WarmStartCache
    from nla_variants.variants.registry import BuildContext, build

    ctx = BuildContext(resolve_model(str(tiny_model_dir)), 2, 64, 8.0)
    cache = WarmStartCache(tmp_path, "ds", "32-true", "cpu", 0)
    key = cache.key("ar", {"variant": "flowchart", "depth": 1}, TrialConfig().train.ar_sft)
    assert cache.lookup("ar", key) is None
    ar = build("ar", {"variant": "flowchart", "depth": 1}, ctx)
    path = cache.store("ar", key, ar, ctx, step=4, figures={"steps": 4.0})
    assert cache.lookup("ar", key) == path == tmp_path / f"ar-{key}"
    assert cache.lookup("av", key) is None
    assert yaml.safe_load((path / "checkpoint.yaml").read_text())["figures"] == {"steps": 4.0}


def test_only_the_cli_sets_logging_and_warning_filters():
    """Importing the training path leaves Lightning's loggers and the warning filters alone;
    `nla train` / `nla sweep` (cli.setup_logging) quieten Lightning's banners and warnings."""
    import subprocess
    import sys

    code = """
import logging, warnings
import lightning.pytorch

def state():
    patterns = [f[1].pattern for f in warnings.filters if f[1] is not None]
    ours = [p for p in patterns if "eval mode" in p or "LeafSpec" in p]
    return logging.getLogger("lightning.pytorch").level, len(ours)

assert state() == (logging.INFO, 0), state()
import nla_variants.training.experiment
assert state() == (logging.INFO, 0), state()
from nla_variants.cli import setup_logging
setup_logging(True)
assert state() == (logging.INFO, 0), "only a training command quietens Lightning"
setup_logging(True, trains=True)
assert state() == (logging.WARNING, 2), state()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
