"""`run_trial(config) -> metrics`: the only training path. The CLI, sweeps and tests call it.

One trial: find or build the dataset, warm-start the AV and the AR (Lightning), evaluate on the
held-out split, and record everything in one MLflow run (nested when a sweep's run is active):
params = the flattened config, metrics per step, artifacts = resolved config, sample table,
checkpoints (safetensors + sidecar). The stages live beside their modules (`warm_start.py`:
`warm_start_av`, `warm_start_ar`; `rl.py`: `run_rl`) and share one `trial.Trial`; this module
holds the trial's order of stages and its MLflow lifecycle.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import torch

from nla_variants.checks import check_checkpoint, check_tracking_uri, check_writable_dir
from nla_variants.common import distributed
from nla_variants.common.errors import TrialStopped, one_line
from nla_variants.common.io import write_yaml_atomic
from nla_variants.common.masking import SECRET_WORDS, mask, mask_tree
from nla_variants.config import TrialConfig
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation.evaluation import NLL_GAP
from nla_variants.evaluation.evaluation import metric_names as eval_metric_names
from nla_variants.evaluation.faithfulness import metric_names as faithfulness_metric_names
from nla_variants.evaluation.faithfulness import needs_text_only
from nla_variants.evaluation.row_scores import FILE as ROW_SCORES
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import (
    SIDECAR,
)
from nla_variants.training.finetune import with_built_diff_model
from nla_variants.training.memory import check_fits, estimate_for_trial
from nla_variants.training.preflight import preflight
from nla_variants.training.readout import READOUT_FIGURES
from nla_variants.training.rl import (
    RL_FIGURES,
    STATE,
    run_rl,
)
from nla_variants.training.runs import write_run_record
from nla_variants.training.strategy import world_size
from nla_variants.training.trial import Reporter, Trial, resolve_trainer_precision
from nla_variants.training.warm_start import (
    FIT_FIGURES,
    warm_start_ar,
    warm_start_av,
)
from nla_variants.variants.interfaces import PrintsFlowchart
from nla_variants.variants.large_models import (
    frozen_weight_dtype,
)
from nla_variants.variants.registry import BuildContext

EVAL_WALL, TRIAL_WALL = "eval/wall_s", "trial/wall_s"

log = logging.getLogger(__name__)  # its level and Lightning's are the CLI's (cli.setup_logging)

# Called with each stage's name as it starts (STAGES), so a sweep can say where it is.
StageHook = Callable[[str], None]
STAGES = ("prepare", "AV warm start", "AR warm start", "RL", "evaluation")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (MLflow params); anything that looks secret is dropped and
    URL-shaped values (a tracking URI, a base_url) have their passwords masked."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if any(w in k.lower() for w in SECRET_WORDS) and "tokens" not in k.lower():
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = mask(v) if isinstance(v, str) else v
    return out


def _log_learning_curve(t: Trial) -> None:
    """The trial's learning curves against wall minutes (training/curves.py), as a picture."""
    from nla_variants.training.curves import plot_curves, read_curves

    fig = plot_curves(
        read_curves(mlflow.MlflowClient(), t.run_id), f"{t.cfg.name}, seed {t.cfg.seed}"
    )
    if fig is not None:
        import matplotlib.pyplot as plt

        mlflow.log_figure(fig, "curves/learning_curve.png")
        plt.close(fig)


def trial_device(cfg: TrialConfig) -> torch.device:
    return torch.device(cfg.train.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def check_trial_inputs(cfg: TrialConfig) -> None:
    """Everything that can be checked without a model or a dataset, before any stage runs and
    before anything is written: output places, resume checkpoints, the tracking URI, and the
    config against the target's config.json (`preflight`: devices, strategy, layer, variants)."""
    check_writable_dir(cfg.output_dir, "output_dir")
    if cfg.train.warm_start_cache:
        check_writable_dir(cfg.train.warm_start_cache, "train.warm_start_cache")
    for name in ("av_sft", "ar_sft"):
        resume = getattr(cfg.train, name).resume_from
        check_checkpoint(resume, SIDECAR, f"train.{name}.resume_from")
    check_checkpoint(cfg.train.rl.resume_from, STATE, "train.rl.resume_from")
    check_tracking_uri(cfg.mlflow.tracking_uri)
    preflight(cfg)


def run_trial(
    cfg: TrialConfig,
    progress: bool = True,
    reporter: Reporter | None = None,
    tags: dict[str, str] | None = None,
    on_stage: StageHook | None = None,
    leader: bool | None = None,
) -> dict[str, Any]:
    """Train and evaluate one AV/AR pair; returns the metrics (also logged to MLflow) and the
    MLflow `run_id`. `on_stage` hears the name of each stage (STAGES) as it starts.

    `reporter` receives the intermediate RL evals and may stop the trial by raising
    TrialStopped: the MLflow run then ends KILLED with tag nla.state=PRUNED. Any other error
    ends it FAILED with the error in tag nla.error; both are re-raised. `tags` are added to the
    run (a sweep links study, trial number and seed this way).

    With `train.devices` x `train.num_nodes` > 1 every rank runs this: the leader (rank 0,
    `leader` None: from the launcher's environment) hands the config to the others and records
    the run; a follower trains its share in a scratch directory and records nothing."""
    check_trial_inputs(cfg)
    if leader is None:  # a one-process trial leads whatever rank its launcher gave it
        leader = world_size(cfg.train) == 1 or distributed.is_leader()
    if leader and world_size(cfg.train) > 1:
        distributed.hand_over(cfg.model_dump(mode="json"))
    device = trial_device(cfg)
    if leader:  # before anything large loads; it counts every process of the node
        estimate = estimate_for_trial(cfg, device)
        log.info(estimate.line())
        check_fits(estimate, device)
    stage = on_stage or (lambda name: None)
    stage("prepare")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data_cfg = with_built_diff_model(cfg.data)  # a `finetune:` diff_model: the built checkpoint
    data = prepare(data_cfg, progress=progress, wait=True)  # sweep workers may race
    dataset = StoredDataset.open(data.path)
    ctx = BuildContext.from_dataset(
        resolve_model(cfg.data.target.model),
        dataset,
        frozen_weight_dtype(device, resolve_trainer_precision(cfg.train.precision, device)),
    )
    train_mean = dataset.training_mean()
    if not leader:
        with tempfile.TemporaryDirectory(prefix="nla-follower-") as scratch:
            t = Trial(cfg, ctx, dataset, Path(scratch), "", device, False, train_mean, leader=False)
            metrics, _, _ = _stages(t, stage)
        return metrics

    if cfg.mlflow.tracking_uri:
        mlflow.set_tracking_uri(os.path.expandvars(cfg.mlflow.tracking_uri))
    mlflow.set_experiment(cfg.mlflow.experiment)
    nested = mlflow.active_run() is not None
    run_id = None
    try:
        # tags at creation: a sweep resuming after a kill finds (and closes) this run by them
        start_tags = {"nla.state": "RUNNING", **(tags or {})}
        with mlflow.start_run(run_name=cfg.name, nested=nested, tags=start_tags) as run:
            run_id = run.info.run_id
            run_dir = Path(cfg.output_dir) / run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            t = Trial(cfg, ctx, dataset, run_dir, run_id, device, progress, train_mean, reporter)
            metrics = _run(t, data.path.name, tags or {}, stage)
    except TrialStopped:
        if run_id is not None:
            client = mlflow.MlflowClient()
            client.set_tag(run_id, "nla.state", "PRUNED")
            client.set_terminated(run_id, "KILLED")
        raise
    except BaseException as e:
        if run_id is not None:
            client = mlflow.MlflowClient()
            client.set_tag(run_id, "nla.state", "FAILED")
            client.set_tag(run_id, "nla.error", one_line(e))
        raise
    return metrics


def _run(t: Trial, dataset_name: str, tags: dict[str, str], stage: StageHook) -> dict[str, Any]:
    """The body of one trial inside its (active) MLflow run."""
    cfg = t.cfg
    resolved = mask_tree(cfg.model_dump(mode="json"))
    write_yaml_atomic(t.run_dir / "config.yaml", resolved)  # a full disk names the file
    mlflow.log_params({k: str(v)[:500] for k, v in flatten(resolved).items()})
    mlflow.set_tags(
        {
            "av.variant": cfg.av.variant.name,
            "ar.variant": cfg.ar.variant.name,
            "dataset": dataset_name,
            "seed": str(cfg.seed),
            "nla.state": "RUNNING",
            **tags,
        }
    )
    mlflow.log_artifact(str(t.run_dir / "config.yaml"))
    metrics, table, ar = _stages(t, stage)
    mlflow.log_metrics(metrics)
    if table:
        mlflow.log_table({k: [r[k] for r in table] for k in table[0]}, "samples.json")
    if isinstance(ar, PrintsFlowchart):  # an inspectable AR: its decision structure as text
        mlflow.log_text(ar.flowchart(t.train_mean), "flowchart.txt")
    _log_learning_curve(t)
    if cfg.mlflow.log_checkpoints:
        for name, directory in t.checkpoints.items():
            mlflow.log_artifacts(str(directory), f"checkpoints/{name}")
    mlflow.set_tag("nla.state", "FINISHED")
    write_run_record(t.run_dir, t.checkpoints, t.dataset.path, metrics)
    metrics["run_id"] = t.run_id
    return metrics


def _stages(t: Trial, stage: StageHook) -> tuple[dict[str, Any], list[dict], torch.nn.Module]:
    """Warm starts, RL and evaluation, on every rank: (metrics, sample table, AR)."""
    cfg = t.cfg
    metrics: dict[str, Any] = {}
    t0 = time.perf_counter()
    if cfg.train.rl.resume_from:  # the warm start is inside the RL checkpoint
        av = ar = None
    else:
        stage("AV warm start")
        av, figs = warm_start_av(t)
        metrics.update(figs)
        stage("AR warm start")
        ar, figs = warm_start_ar(t, av)
        metrics.update(figs)
        if t.leader:  # nla explain/export find them
            write_run_record(t.run_dir, t.checkpoints, t.dataset.path)
    if cfg.train.rl.steps:
        stage("RL")
        av, ar, figs = run_rl(t, av, ar)
        metrics.update(figs)

    stage("evaluation")
    t_eval = time.perf_counter()
    scores, table, per_row = t.evaluate(av, ar, cfg.eval.max_samples)
    metrics.update({f"eval/{k}": v for k, v in scores.items()})
    if t.leader:  # the rows the means are over: `nla compare` pairs presets on them
        mlflow.log_artifact(str(per_row.write(t.run_dir / ROW_SCORES)))
    metrics[EVAL_WALL] = time.perf_counter() - t_eval
    metrics[TRIAL_WALL] = time.perf_counter() - t0
    return metrics, table, ar


def metric_names(cfg: TrialConfig) -> list[str]:
    """The metric names `run_trial` returns for `cfg` (beside `run_id`), known before it runs:
    a sweep refuses a report column or objective that no trial produces. A score that depends
    on the data (a property the eval rows lack, a probe that could not be fitted) may still be
    missing from a given trial."""
    teacher = cfg.data.teacher
    explained = "eval" in teacher.splits
    text_only = needs_text_only(teacher.kind, teacher.splits)
    scores = eval_metric_names(explained, faithfulness_metric_names(explained, text_only))
    names = [f"eval/{n}" for n in scores] + [EVAL_WALL, TRIAL_WALL]
    train = cfg.train
    if not train.rl.resume_from:  # a resumed RL run has its warm starts inside its checkpoint
        av = [*FIT_FIGURES, "wall_s"]
        if train.av_sft.eval_every:
            av += [f"val_{n.removeprefix('av_')}" for n in NLL_GAP]
            av += ["best_nll_gap", "best_step"] if train.av_sft.keep_best else []
        ar = ["steps", "wall_s"] + (list(FIT_FIGURES) if train.ar_sft.steps else [])
        ar += ["av_text_rows"] if train.ar_sft.av_text else []
        ar += list(READOUT_FIGURES) if train.ar_sft.ridge else []
        hit = ["cache_hit"] if train.reuse_warm_start else []
        names += [f"av_sft/{n}" for n in dict.fromkeys([*av, *hit])]
        names += [f"ar_sft/{n}" for n in dict.fromkeys([*ar, *hit])]
    if train.rl.steps:
        names += [f"rl/{n}" for n in RL_FIGURES]
    return names
