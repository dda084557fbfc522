"""`run_trial(config) -> metrics`: the only training path. The CLI, sweeps and tests call it.

One trial: find or build the dataset, warm-start the AV and the AR (Lightning), evaluate on the
held-out split, and record everything in one MLflow run (nested when a sweep's run is active):
params = the flattened config, metrics per step, artifacts = resolved config, sample table,
checkpoints (safetensors + sidecar).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.loggers import MLFlowLogger

from nla_variants import __version__
from nla_variants.checkpoint import (
    SIDECAR,
    load_component,
    load_optimizer_state,
    save_checkpoint,
)
from nla_variants.checks import check_checkpoint, check_tracking_uri, check_writable_dir
from nla_variants.config import ARSFTConfig, AVSFTConfig, SFTConfig, TrialConfig
from nla_variants.core.vectors import mean_direction
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.errors import TrialStopped, one_line
from nla_variants.evaluation import evaluate, explain
from nla_variants.faithfulness import Faithfulness
from nla_variants.hashing import hash_obj
from nla_variants.io import write_text_atomic, write_yaml_atomic
from nla_variants.masking import SECRET_WORDS, mask, mask_tree
from nla_variants.registry import BuildContext, build
from nla_variants.runs import write_run_record
from nla_variants.target import cpu_has_bf16, resolve_model
from nla_variants.training.data import NLADataModule, SplitRows, load_split
from nla_variants.training.readout import head_features, refit_head
from nla_variants.training.rl import (
    STATE,
    RLCheckpoint,
    RLModule,
    load_ridge_rows,
    load_rl_checkpoint,
    save_rl_checkpoint,
    steps_loader,
)
from nla_variants.training.warm_start import ARWarmStart, AVWarmStart, KeepBest, WarmStart

log = logging.getLogger(__name__)
# Lightning's own INFO lines (accelerator banners, tips) drown the trial's output.
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
# RL keeps its frozen reference AV in eval mode on purpose; Lightning warns about it every trial.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")

EVAL_CURVE = (
    "roundtrip_fve",
    "roundtrip_shuffled_fve",
    "roundtrip_gap",
    "tag_failure_rate",
    "schema_violation_rate",
    "ar_text_only_fve",
    "quote_rate",
    "length_mean",
)
# Called with (RL step, intermediate eval metrics); may raise TrialStopped (a sweep's pruner).
Reporter = Callable[[int, dict[str, float]], None]


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


class PeriodicEval(L.Callback):
    """Every `every` RL steps, the held-out eval (logged and reported by `run_eval`); a reporter
    may end the trial here by raising TrialStopped, which Lightning passes through."""

    def __init__(self, every: int, run_eval: Callable[[int], dict[str, float]]) -> None:
        self.every, self.run_eval = every, run_eval

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.every and module.step_no % self.every == 0:
            scores = self.run_eval(module.step_no)
            module.history[-1].update({f"eval/{k}": v for k, v in scores.items()})


GAP_METRIC = "val/nll_gap"  # logged by AVWarmStart's validation loop
_STAGES: dict[str, tuple[type[WarmStart], str]] = {
    "av": (AVWarmStart, "av_sft"),
    "ar": (ARWarmStart, "ar_sft"),
}


@dataclass
class _Trial:
    """What every stage of one trial shares."""

    cfg: TrialConfig
    ctx: BuildContext
    dataset: StoredDataset
    run_dir: Path
    run_id: str
    device: torch.device
    progress: bool
    train_mean: torch.Tensor
    reporter: Reporter | None = None
    checkpoints: dict[str, Path] = field(default_factory=dict)
    faithfulness: Faithfulness | None = None  # built at the first evaluation, then reused

    @property
    def warm_start_root(self) -> Path:
        root = self.cfg.train.warm_start_cache
        return Path(root) if root else Path(self.cfg.output_dir).parent / "warm_starts"

    @property
    def precision(self) -> str:
        return resolve_trainer_precision(self.cfg.train.precision, self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision.startswith("bf16"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def trainer(
        self,
        prefix: str,
        max_steps: int,
        max_minutes: float | None,
        callbacks: list[L.Callback],
        val_every: int = 0,
    ) -> L.Trainer:
        """max_steps=-1: one pass over the loader (RL, where each item is one step and
        Lightning would count every optimiser's step in global_step). `val_every`: run the
        validation loop every N training steps, across epochs (0: never)."""
        return L.Trainer(
            accelerator="gpu" if self.device.type == "cuda" else "cpu",
            devices=1,
            max_steps=max_steps,
            max_epochs=1 if max_steps == -1 else -1,
            max_time={"minutes": max_minutes} if max_minutes else None,
            precision=self.precision,
            logger=MLFlowLogger(
                experiment_name=self.cfg.mlflow.experiment,
                tracking_uri=mlflow.get_tracking_uri(),
                run_id=self.run_id,
                prefix=prefix,
            ),
            callbacks=callbacks,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=self.progress,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if val_every else 0,
            val_check_interval=val_every or None,
            check_val_every_n_epoch=None if val_every else 1,
            log_every_n_steps=1,
            default_root_dir=self.run_dir,
        )

    def evaluate(self, av, ar, max_samples: int) -> tuple[dict[str, float], list[dict]]:
        e = self.cfg.eval
        if self.faithfulness is None:  # probes and properties: the dataset's, not the models'
            self.faithfulness = Faithfulness.from_dataset(self.dataset, self.cfg.seed)
        return evaluate(
            av,
            ar,
            load_split(self.dataset, "eval"),
            self.train_mean,
            max_samples=max_samples,
            max_new_tokens=e.max_new_tokens,
            batch_size=e.batch_size,
            table_rows=e.table_rows,
            quote_ngram=e.quote_ngram,
            seed=self.cfg.seed,
            autocast=self.autocast(),
            faithfulness=self.faithfulness,
        )


_NOT_IN_KEY = {"checkpoint_every", "resume_from"}


def _unset_ridge(sft: SFTConfig) -> set[str]:
    """Without a ridge readout its keys stay out of the key: earlier warm starts stay valid."""
    return {"ridge", "ridge_rows"} if getattr(sft, "ridge", None) is None else set()


def _warm_start_key(t: _Trial, kind: str, sft: SFTConfig, reads: dict | None = None) -> str:
    """Everything that decides the warm-started weights (not where checkpoints go). `reads`:
    what an AR learns to read (the AV's output format, the AV whose own text it reads)."""
    return hash_obj(
        {
            "render": reads,
            "kind": kind,
            "dataset": t.dataset.path.name,  # content-addressed: model, layer, corpus, teacher
            "section": getattr(t.cfg, kind),
            "sft": sft.model_dump(mode="json", exclude=_NOT_IN_KEY | _unset_ridge(sft)),
            "precision": t.precision,
            "device": t.device.type,
            "seed": t.cfg.seed,
            "version": __version__,
        },
        16,
    )


def _warm_start(t: _Trial, kind: str, av=None) -> tuple[torch.nn.Module, dict[str, float]]:
    """Warm-start one component; returns it (on the device) and its training figures.

    A warm start whose configuration is identical to a finished one (same dataset, variant
    config, SFT settings, precision, seed) is loaded from the content-addressed cache instead of
    retrained, so trials that differ only downstream (RL, eval) share it."""
    module_cls, split = _STAGES[kind]
    sft: SFTConfig = getattr(t.cfg.train, split)
    # the AR learns to read explanations in the AV's output format (e.g. a structured schema)
    render = av.render_target if kind == "ar" and av is not None else None
    reads = None
    if render is not None:
        reads = av.metadata().get("schema")
        if sft.av_text:  # the AR also reads this AV's own explanations
            reads = {"schema": reads, "av": _warm_start_key(t, "av", t.cfg.train.av_sft)}
    L.seed_everything(t.cfg.seed, workers=True, verbose=False)  # independent of the other stage
    cached = None
    if t.cfg.train.reuse_warm_start and not sft.resume_from:
        cached = t.warm_start_root / f"{kind}-{_warm_start_key(t, kind, sft, reads)}"
        if (cached / SIDECAR).is_file():
            component, meta = load_component(cached, t.ctx)
            t.checkpoints[f"{kind}_checkpoint"] = cached
            mlflow.set_tag(f"{split}.cache", f"hit {cached}")
            figures = {**meta.get("figures", {}), "cache_hit": 1.0}
            return component.to(t.device).eval(), {f"{split}/{k}": v for k, v in figures.items()}
    offset = 0
    callbacks: list[L.Callback] = []
    if sft.resume_from:
        component, meta = load_component(sft.resume_from, t.ctx)
        offset = int(meta["step"])
        callbacks.append(_ResumeOptimizer(sft.resume_from))
    else:
        component = build(kind, getattr(t.cfg, kind), t.ctx)
    if hasattr(component, "verify_injection"):
        component.verify_injection()
    component.train()
    ckpt_dir = t.run_dir / f"{kind}_checkpoint"
    if sft.checkpoint_every:
        callbacks.append(ComponentCheckpoint(sft.checkpoint_every, ckpt_dir, kind, t.ctx))
    remaining = max(0, sft.steps - offset)
    extra = {"render": render} if kind == "ar" else {}
    module = module_cls(
        component, sft.lr, sft.weight_decay, sft.warmup_steps, sft.steps, offset, **extra
    )
    figures = {"steps": float(offset)}
    ridge = getattr(sft, "ridge", None)
    if remaining or ridge:
        av_rows = _av_explanations(t, av, sft) if render is not None and sft.av_text else None
        start = time.perf_counter()
        trainer = None
        if remaining:
            val_every = sft.eval_every if kind == "av" else 0
            keep_best = _held_out_check(sft, callbacks) if val_every else None
            trainer = t.trainer(split, remaining, sft.max_minutes, callbacks, val_every)
            data = NLADataModule(
                t.dataset,
                split,
                sft.batch_size,
                t.cfg.seed,
                val_split="ar_sft" if val_every else None,  # rows the AV never trains on
                val_samples=getattr(sft, "eval_samples", 0),
                extra=av_rows,
                extra_share=getattr(sft, "av_text", 0.0),
            )
            trainer.fit(module, datamodule=data)
            figures = {
                "steps": float(offset + trainer.global_step),
                "tokens": float(module.tokens),
                "tokens_per_s": module.tokens / max(module.train_seconds, 1e-9),
                "final_loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
            }
            if val_every:
                figures.update(
                    {
                        k.replace("val/", "val_"): float(v)
                        for k, v in trainer.callback_metrics.items()
                    }
                )
                figures.pop("train/loss", None)
            if keep_best is not None and keep_best.best is not None:
                figures.update(best_nll_gap=keep_best.best, best_step=float(keep_best.best_step))
        if av_rows is not None:
            figures["av_text_rows"] = float(len(av_rows))
        if ridge:
            figures.update(_ridge_readout(t, component, sft, av_rows, render))
        figures["wall_s"] = time.perf_counter() - start
        if cached is None or sft.checkpoint_every:  # resumable: weights, optimiser, schedule
            save_checkpoint(
                ckpt_dir,
                component,
                kind,
                t.ctx,
                step=int(figures["steps"]),
                optimizer=trainer.optimizers[0] if trainer else None,
                scheduler=trainer.lr_scheduler_configs[0].scheduler if trainer else None,
            )
        if cached is not None:  # weights only: the cache serves warm starts, not SFT resumes
            step = int(figures["steps"])
            save_checkpoint(
                cached, component, kind, t.ctx, step=step, extra={"figures": figures}, replace=False
            )  # a concurrent worker that trained the same warm start keeps its (equal) copy
            mlflow.set_tag(f"{split}.cache", f"stored {cached}")
            if not sft.checkpoint_every:
                ckpt_dir = cached
    if (ckpt_dir / SIDECAR).is_file():
        t.checkpoints[f"{kind}_checkpoint"] = ckpt_dir
    component.to(t.device).eval()
    return component, {f"{split}/{k}": v for k, v in figures.items()}


def _teacher_rows(t: _Trial, n: int, render) -> tuple[list[str], np.ndarray, list[str]]:
    """`n` random ar_sft teacher rows (chosen by the seed), in the AV's output format: the rows
    every closed-form AR readout fits on (texts, vectors, source prefixes)."""
    rows = load_split(t.dataset, "ar_sft").with_explanations()
    g = torch.Generator().manual_seed(t.cfg.seed)
    rows = rows.take(torch.randperm(len(rows), generator=g)[:n].tolist())
    texts = [render(e) for e in rows.explanations] if render else list(rows.explanations)
    return texts, rows.vectors, list(rows.prefixes)


def _ridge_readout(
    t: _Trial, ar, sft: ARSFTConfig, av_rows: SplitRows | None, render
) -> dict[str, float]:
    """End the AR warm start on the closed-form head (training/readout.py): fitted on
    `ridge_rows` random ar_sft teacher rows (in the AV's format) plus every AV-text row."""
    texts, vectors, sources = _teacher_rows(t, sft.ridge_rows, render)
    if av_rows is not None:
        texts += list(av_rows.explanations)
        vectors = np.concatenate([vectors, av_rows.vectors])
        sources += list(av_rows.prefixes)
    return refit_head(
        ar,
        texts,
        torch.from_numpy(vectors.copy()),
        sources,
        sft.ridge,
        t.cfg.eval.batch_size,
        t.autocast,
    )


def _rl_ridge_rows(t: _Trial, av, ar, resume: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where RL's closed-form AR refit starts: a resumed run's rows, else the fixed AR's
    features of `ar_ridge_rows` teacher rows."""
    saved = load_ridge_rows(resume) if resume is not None else None
    if saved is not None:
        return saved
    rl = t.cfg.train.rl
    texts, vectors, sources = _teacher_rows(t, rl.ar_ridge_rows, av.render_target)
    feats = head_features(ar, texts, sources, t.cfg.eval.batch_size, t.autocast)
    return feats, torch.from_numpy(vectors.copy())


def _av_explanations(t: _Trial, av, sft: ARSFTConfig) -> SplitRows:
    """The warm AV's greedy explanations of `av_text_rows` random ar_sft rows (those it closes):
    text in the AV's own dialect, for the AR to learn to read beside the teacher's."""
    rows = load_split(t.dataset, "ar_sft")
    g = torch.Generator().manual_seed(t.cfg.seed)
    rows = rows.take(torch.randperm(len(rows), generator=g)[: sft.av_text_rows].tolist())
    # every AR warm start on the same AV reads the same text: generated once, kept beside the cache
    memo = None
    if t.cfg.train.reuse_warm_start:
        key = {
            "av": _warm_start_key(t, "av", t.cfg.train.av_sft),
            "rows": rows.example_ids,
            "max_new_tokens": t.cfg.eval.max_new_tokens,
        }
        memo = t.warm_start_root / f"av_text-{hash_obj(key, 16)}.json"
    if memo is not None and memo.is_file():
        explained = json.loads(memo.read_text())
    else:
        with t.autocast():
            _, explained = explain(
                av,
                torch.from_numpy(rows.vectors.copy()),
                t.cfg.eval.batch_size,
                t.cfg.eval.max_new_tokens,
            )
        if memo is not None:
            memo.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(memo, json.dumps(explained))
    closed = [i for i, e in enumerate(explained) if e is not None]
    rows = rows.take(closed)
    rows.explanations = [explained[i] for i in closed]
    rows.rendered = True
    return rows


def _held_out_check(sft: AVSFTConfig, callbacks: list[L.Callback]) -> KeepBest | None:
    """Callbacks acting on the AV's held-out NLL gap: keep the best weights, stop early."""
    keep = None
    if sft.keep_best:
        keep = KeepBest(GAP_METRIC, "max")
        callbacks.append(keep)
    if sft.stop_patience or sft.stop_at_gap is not None:
        callbacks.append(
            EarlyStopping(
                GAP_METRIC,
                mode="max",
                patience=sft.stop_patience or 10**9,
                stopping_threshold=sft.stop_at_gap,
                check_on_train_epoch_end=False,
            )
        )
    return keep


def _rl(t: _Trial, av, ar) -> tuple[torch.nn.Module, torch.nn.Module, dict[str, float]]:
    """GRPO on the warm-started AV with the AR trained online (skipped when rl.steps is 0)."""
    rl = t.cfg.train.rl
    start = 0
    resume = Path(rl.resume_from) if rl.resume_from else None
    if resume is not None:
        av, ar, state = load_rl_checkpoint(resume, t.ctx)
        start = int(state["step"])
        reference_dir = Path(state["reference"])
    else:
        reference_dir = t.checkpoints["av_checkpoint"]
    reference, _ = load_component(reference_dir, t.ctx)
    av.to(t.device).train()
    ar.to(t.device).train()
    reference.to(t.device)
    rows = load_split(t.dataset, "rl")

    def on_eval(step: int) -> dict[str, float]:
        av.eval()
        ar.eval()
        scores, _ = t.evaluate(av, ar, t.cfg.train.rl.eval_samples)
        av.train()
        ar.train()
        picked = {k: scores[k] for k in EVAL_CURVE if k in scores}
        mlflow.log_metrics({f"rl/eval/{k}": v for k, v in picked.items()}, step=step)
        if t.reporter is not None:
            t.reporter(step, picked)
        return picked

    ridge_rows = _rl_ridge_rows(t, av, ar, resume) if rl.ar_ridge is not None else None
    module = RLModule(av, ar, reference, rows, t.train_mean, rl, t.cfg.seed, start, ridge_rows)
    ckpt_dir = t.run_dir / "rl_checkpoint"
    callbacks = [
        RLCheckpoint(rl.checkpoint_every, ckpt_dir, t.ctx, reference_dir, resume),
        PeriodicEval(rl.eval_every, on_eval),
    ]
    figures: dict[str, float] = {"steps": float(start)}
    if rl.eval_every and rl.steps > start:  # the curve starts at the warm start (or resume point)
        first = on_eval(start)
        figures.update({f"eval_start/{k}": v for k, v in first.items()})
    if rl.steps > start:
        trainer = t.trainer("", -1, rl.max_minutes, callbacks)
        begin = time.perf_counter()
        trainer.fit(module, steps_loader(start, rl.steps))
        if t.cfg.train.save_checkpoints or rl.checkpoint_every:
            save_rl_checkpoint(ckpt_dir, module, t.ctx, reference_dir)
            t.checkpoints["rl_checkpoint"] = ckpt_dir
        hist = module.history
        figures = {
            "steps": float(module.step_no),
            "wall_s": time.perf_counter() - begin,
            "skipped_steps": float(module.skipped),
        }
        for part in ("generate", "score", "train"):
            figures[f"step_{part}_s"] = float(np.mean([h[f"time/{part}_s"] for h in hist]))
    av.eval()
    ar.eval()
    return av, ar, {f"rl/{k}": v for k, v in figures.items()}


def check_trial_inputs(cfg: TrialConfig) -> None:
    """Everything that can be checked without a model or a dataset, before any stage runs and
    before anything is written: output places, resume checkpoints, the tracking URI."""
    check_writable_dir(cfg.output_dir, "output_dir")
    if cfg.train.warm_start_cache:
        check_writable_dir(cfg.train.warm_start_cache, "train.warm_start_cache")
    for name in ("av_sft", "ar_sft"):
        resume = getattr(cfg.train, name).resume_from
        check_checkpoint(resume, SIDECAR, f"train.{name}.resume_from")
    check_checkpoint(cfg.train.rl.resume_from, STATE, "train.rl.resume_from")
    check_tracking_uri(cfg.mlflow.tracking_uri)


def run_trial(
    cfg: TrialConfig,
    progress: bool = True,
    reporter: Reporter | None = None,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one AV/AR pair; returns the metrics (also logged to MLflow) and the
    MLflow `run_id`.

    `reporter` receives the intermediate RL evals and may stop the trial by raising
    TrialStopped: the MLflow run then ends KILLED with tag nla.state=PRUNED. Any other error
    ends it FAILED with the error in tag nla.error; both are re-raised. `tags` are added to the
    run (a sweep links study, trial number and seed this way)."""
    check_trial_inputs(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    data = prepare(cfg.data, progress=progress, wait=True)  # sweep workers may race
    dataset = StoredDataset.open(data.path)
    side = dataset.sidecar
    train_vecs = torch.from_numpy(
        np.concatenate([dataset.vectors("av_sft"), dataset.vectors("ar_sft")])
    )
    ctx = BuildContext(
        resolve_model(cfg.data.target.model),
        side["layer"],
        side["d_model"],
        side["norms"]["all"]["p50"],
        data_mean=train_vecs.mean(0),
        data_std=train_vecs.std(0),
    )
    device = torch.device(cfg.train.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_mean = mean_direction(train_vecs)

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
            t = _Trial(cfg, ctx, dataset, run_dir, run_id, device, progress, train_mean, reporter)
            metrics = _run(t, data.path.name, tags or {})
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


def _run(t: _Trial, dataset_name: str, tags: dict[str, str]) -> dict[str, Any]:
    """The body of one trial inside its (active) MLflow run."""
    cfg = t.cfg
    resolved = mask_tree(cfg.model_dump(mode="json"))
    write_yaml_atomic(t.run_dir / "config.yaml", resolved)  # a full disk names the file
    mlflow.log_params({k: str(v)[:500] for k, v in flatten(resolved).items()})
    mlflow.set_tags(
        {
            "av.variant": cfg.av.get("variant", "baseline"),
            "ar.variant": cfg.ar.get("variant", "baseline"),
            "dataset": dataset_name,
            "seed": str(cfg.seed),
            "nla.state": "RUNNING",
            **tags,
        }
    )
    mlflow.log_artifact(str(t.run_dir / "config.yaml"))

    metrics: dict[str, Any] = {}
    t0 = time.perf_counter()
    if cfg.train.rl.resume_from:  # the warm start is inside the RL checkpoint
        av = ar = None
    else:
        av, figs = _warm_start(t, "av")
        metrics.update(figs)
        ar, figs = _warm_start(t, "ar", av=av)
        metrics.update(figs)
        write_run_record(t.run_dir, t.checkpoints, t.dataset.path)  # nla explain/export find them
    if cfg.train.rl.steps:
        av, ar, figs = _rl(t, av, ar)
        metrics.update(figs)

    t_eval = time.perf_counter()
    scores, table = t.evaluate(av, ar, cfg.eval.max_samples)
    metrics.update({f"eval/{k}": v for k, v in scores.items()})
    metrics["eval/wall_s"] = time.perf_counter() - t_eval
    metrics["trial/wall_s"] = time.perf_counter() - t0
    mlflow.log_metrics(metrics)
    if table:
        mlflow.log_table({k: [r[k] for r in table] for k in table[0]}, "samples.json")
    if hasattr(ar, "flowchart"):  # an inspectable AR: its decision structure as text
        mlflow.log_text(ar.flowchart(t.train_mean), "flowchart.txt")
    if cfg.mlflow.log_checkpoints:
        for name, directory in t.checkpoints.items():
            mlflow.log_artifacts(str(directory), f"checkpoints/{name}")
    mlflow.set_tag("nla.state", "FINISHED")
    write_run_record(t.run_dir, t.checkpoints, t.dataset.path, metrics)
    metrics["run_id"] = t.run_id
    return metrics
