"""`run_trial(config) -> metrics`: the only training path. The CLI, sweeps and tests call it.

One trial: find or build the dataset, warm-start the AV and the AR (Lightning), evaluate on the
held-out split, and record everything in one MLflow run (nested when a sweep's run is active):
params = the flattened config, metrics per step, artifacts = resolved config, sample table,
checkpoints (safetensors + sidecar).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import torch
import yaml
from lightning.pytorch.loggers import MLFlowLogger

from nla_variants.checkpoint import load_component, load_optimizer_state, save_checkpoint
from nla_variants.config import SFTConfig, TrialConfig
from nla_variants.core.vectors import mean_direction
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation import evaluate
from nla_variants.registry import BuildContext, build
from nla_variants.target import cpu_has_bf16, resolve_model
from nla_variants.training.data import NLADataModule, load_split
from nla_variants.training.warm_start import ARWarmStart, AVWarmStart, WarmStart

log = logging.getLogger(__name__)

SECRET_WORDS = ("key", "token", "secret", "password")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (MLflow params); anything that looks secret is dropped."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if any(w in k.lower() for w in SECRET_WORDS) and "tokens" not in k.lower():
            continue
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def resolve_trainer_precision(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    return "bf16-mixed" if device.type == "cuda" or cpu_has_bf16() else "32-true"


class ComponentCheckpoint(L.Callback):
    """Every N optimiser steps, a resumable safetensors checkpoint (weights, optimiser, step)."""

    def __init__(self, every: int, directory: Path, kind: str, ctx: BuildContext) -> None:
        self.every, self.directory, self.kind, self.ctx = every, directory, kind, ctx

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        step = module.step_offset + trainer.global_step
        if self.every and trainer.global_step % self.every == 0:
            save_checkpoint(
                self.directory,
                module.component,
                self.kind,
                self.ctx,
                step=step,
                optimizer=trainer.optimizers[0],
                scheduler=trainer.lr_scheduler_configs[0].scheduler,
            )


class _ResumeOptimizer(L.Callback):
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def on_train_start(self, trainer, module) -> None:
        load_optimizer_state(self.directory, trainer.optimizers[0])


def _fit(
    module_cls: type[WarmStart],
    kind: str,
    split: str,
    sft: SFTConfig,
    ctx: BuildContext,
    section: dict,
    dataset: StoredDataset,
    run_dir: Path,
    cfg: TrialConfig,
    run_id: str,
    device: torch.device,
) -> tuple[torch.nn.Module, dict[str, float]]:
    """Warm-start one component; returns it (on `device`) and its training figures."""
    offset = 0
    callbacks: list[L.Callback] = []
    if sft.resume_from:
        component, meta = load_component(sft.resume_from, ctx)
        offset = int(meta["step"])
        callbacks.append(_ResumeOptimizer(sft.resume_from))
    else:
        component = build(kind, section, ctx)
    if hasattr(component, "verify_injection"):
        component.verify_injection()
    component.train()
    ckpt_dir = run_dir / f"{kind}_checkpoint"
    if sft.checkpoint_every:
        callbacks.append(ComponentCheckpoint(sft.checkpoint_every, ckpt_dir, kind, ctx))
    remaining = max(0, sft.steps - offset)
    module = module_cls(component, sft.lr, sft.weight_decay, sft.warmup_steps, sft.steps, offset)
    figures = {"steps": float(offset)}
    if remaining:
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=1,
            max_steps=remaining,
            max_epochs=-1,
            max_time={"minutes": sft.max_minutes} if sft.max_minutes else None,
            precision=resolve_trainer_precision(cfg.train.precision, device),
            logger=MLFlowLogger(
                experiment_name=cfg.mlflow.experiment,
                tracking_uri=mlflow.get_tracking_uri(),
                run_id=run_id,
                prefix=split,
            ),
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            log_every_n_steps=1,
            default_root_dir=run_dir,
        )
        dm = NLADataModule(dataset, split, sft.batch_size, cfg.seed)
        t = time.perf_counter()
        trainer.fit(module, datamodule=dm)
        figures = {
            "steps": float(offset + trainer.global_step),
            "wall_s": time.perf_counter() - t,
            "tokens": float(module.tokens),
            "tokens_per_s": module.tokens / max(module.train_seconds, 1e-9),
            "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
        }
        save_checkpoint(
            ckpt_dir,
            component,
            kind,
            ctx,
            step=int(figures["steps"]),
            optimizer=trainer.optimizers[0],
            scheduler=trainer.lr_scheduler_configs[0].scheduler,
        )
    component.to(device).eval()
    return component, {f"{split}/{k}": v for k, v in figures.items()}


def run_trial(cfg: TrialConfig, progress: bool = True) -> dict[str, Any]:
    """Train and evaluate one AV/AR pair; returns the metrics (also logged to MLflow) and the
    MLflow `run_id`."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = prepare(cfg.data, progress=progress)
    dataset = StoredDataset.open(data.path)
    side = dataset.sidecar
    ctx = BuildContext(
        resolve_model(cfg.data.target.model),
        side["layer"],
        side["d_model"],
        side["norms"]["all"]["p50"],
    )
    device = (
        torch.device(cfg.train.device)
        if cfg.train.device
        else (torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
    )
    train_vecs = np.concatenate([dataset.vectors("av_sft"), dataset.vectors("ar_sft")])
    train_mean = mean_direction(torch.from_numpy(train_vecs))

    if cfg.mlflow.tracking_uri:
        mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment(cfg.mlflow.experiment)
    nested = mlflow.active_run() is not None
    with mlflow.start_run(run_name=cfg.name, nested=nested) as run:
        run_dir = Path(cfg.output_dir) / run.info.run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved = cfg.model_dump(mode="json")
        (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
        mlflow.log_params({k: str(v)[:500] for k, v in flatten(resolved).items()})
        mlflow.set_tags(
            {
                "av.variant": cfg.av.get("variant", "baseline"),
                "ar.variant": cfg.ar.get("variant", "baseline"),
                "dataset": data.path.name,
                "seed": str(cfg.seed),
            }
        )
        mlflow.log_artifact(str(run_dir / "config.yaml"))

        metrics: dict[str, float] = {}
        t0 = time.perf_counter()
        av, figs = _fit(
            AVWarmStart,
            "av",
            "av_sft",
            cfg.train.av_sft,
            ctx,
            cfg.av,
            dataset,
            run_dir,
            cfg,
            run.info.run_id,
            device,
        )
        metrics.update(figs)
        ar, figs = _fit(
            ARWarmStart,
            "ar",
            "ar_sft",
            cfg.train.ar_sft,
            ctx,
            cfg.ar,
            dataset,
            run_dir,
            cfg,
            run.info.run_id,
            device,
        )
        metrics.update(figs)

        precision = resolve_trainer_precision(cfg.train.precision, device)
        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16)
            if precision.startswith("bf16")
            else contextlib.nullcontext()
        )
        t_eval = time.perf_counter()
        scores, table = evaluate(
            av,
            ar,
            load_split(dataset, "eval"),
            train_mean,
            max_samples=cfg.eval.max_samples,
            max_new_tokens=cfg.eval.max_new_tokens,
            batch_size=cfg.eval.batch_size,
            table_rows=cfg.eval.table_rows,
            quote_ngram=cfg.eval.quote_ngram,
            seed=cfg.seed,
            autocast=autocast,
        )
        metrics.update({f"eval/{k}": v for k, v in scores.items()})
        metrics["eval/wall_s"] = time.perf_counter() - t_eval
        metrics["trial/wall_s"] = time.perf_counter() - t0
        mlflow.log_metrics(metrics)
        if table:
            mlflow.log_table({k: [r[k] for r in table] for k in table[0]}, "samples.json")
        if cfg.mlflow.log_checkpoints:
            for kind in ("av", "ar"):
                if (run_dir / f"{kind}_checkpoint").is_dir():
                    mlflow.log_artifacts(str(run_dir / f"{kind}_checkpoint"), f"checkpoints/{kind}")
        metrics["run_id"] = run.info.run_id
    return metrics
