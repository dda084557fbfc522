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
import tempfile
import time
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

from nla_variants.checks import check_checkpoint, check_tracking_uri, check_writable_dir
from nla_variants.common import distributed
from nla_variants.common.errors import TrialStopped, one_line
from nla_variants.common.io import write_text_atomic, write_yaml_atomic
from nla_variants.common.masking import SECRET_WORDS, mask, mask_tree
from nla_variants.config import ARSFTConfig, AVSFTConfig, SFTConfig, TrialConfig
from nla_variants.data.prepare import prepare
from nla_variants.data.store import SplitRows, StoredDataset
from nla_variants.evaluation.evaluation import NLL_GAP, evaluate
from nla_variants.evaluation.evaluation import metric_names as eval_metric_names
from nla_variants.evaluation.faithfulness import Faithfulness, needs_text_only
from nla_variants.evaluation.faithfulness import metric_names as faithfulness_metric_names
from nla_variants.evaluation.rollouts import explain
from nla_variants.evaluation.row_scores import FILE as ROW_SCORES
from nla_variants.evaluation.row_scores import RowScores
from nla_variants.target import autocast_context, resolve_model, resolve_precision
from nla_variants.training.callbacks import ComponentCheckpoint, PeriodicEval, ResumeOptimizer
from nla_variants.training.checkpoint import (
    SIDECAR,
    load_component,
    rebuilt,
    save_checkpoint,
)
from nla_variants.training.data import NLADataModule, load_split
from nla_variants.training.finetune import with_built_diff_model
from nla_variants.training.memory import check_fits, estimate_for_trial
from nla_variants.training.preflight import preflight
from nla_variants.training.progress import StepBar
from nla_variants.training.readout import READOUT_FIGURES, head_features, refit_head
from nla_variants.training.rl import (
    STATE,
    RLCheckpoint,
    RLModule,
    load_ridge_rows,
    load_rl_checkpoint,
    save_rl_checkpoint,
    save_rl_weights,
    steps_loader,
)
from nla_variants.training.runs import write_run_record
from nla_variants.training.strategy import lightning_strategy, world_size
from nla_variants.training.warm_cache import WarmStartCache
from nla_variants.training.warm_start import ARWarmStart, AVWarmStart, KeepBest, WarmStart
from nla_variants.variants.interfaces import PrintsFlowchart, VerifiesInjection
from nla_variants.variants.large_models import (
    enable_gradient_checkpointing,
    frozen_weight_dtype,
    hold_frozen_weights,
    train_attention,
)
from nla_variants.variants.registry import BuildContext, Kind, VariantSection

log = logging.getLogger(__name__)  # its level and Lightning's are the CLI's (cli.setup_logging)

EVAL_CURVE = (
    "roundtrip_fve",
    "roundtrip_shuffled_fve",
    "roundtrip_gap",
    "tag_failure_rate",
    "schema_violation_rate",
    "ar_empty_fve",
    "prompt_fve",
    "beats_prompt",
    "beats_prompt_low",
    "beats_prompt_high",
    "av_nll_gap",
    "quote_rate",
    "length_mean",
)
# The names of what each stage reports (beside evaluation.metric_names): the figures are built
# from them, and `metric_names` lists them before a trial runs (a sweep's report, objectives).
FIT_FIGURES = ("steps", "tokens", "tokens_per_s", "final_loss")
RL_FIGURES = (
    "steps",
    "wall_s",
    "skipped_steps",
    "step_generate_s",
    "step_score_s",
    "step_train_s",
)
RL_STEP_PARTS = ("generate", "score", "train")  # RL_FIGURES' step_PART_s
EVAL_WALL, TRIAL_WALL = "eval/wall_s", "trial/wall_s"
# Called with (RL step, intermediate eval metrics); may raise TrialStopped (a sweep's pruner).
Reporter = Callable[[int, dict[str, float]], None]
# Called with each stage's name as it starts (STAGES), so a sweep can say where it is.
StageHook = Callable[[str], None]
STAGES = ("prepare", "AV warm start", "AR warm start", "RL", "evaluation")
_BAR_TITLES = {"av_sft": "AV warm start", "ar_sft": "AR warm start", "": "RL"}  # by prefix


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
    """The Lightning precision string; `auto` follows `target.resolve_precision`."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if resolve_precision("auto", device) == torch.bfloat16 else "32-true"


GAP_METRIC = "val/nll_gap"  # logged by AVWarmStart's validation loop


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
    leader: bool = True  # rank 0: the only rank that writes MLflow, checkpoints and the cache
    checkpoints: dict[str, Path] = field(default_factory=dict)
    faithfulness: Faithfulness | None = None  # built at the first evaluation, then reused

    @property
    def warm_start_root(self) -> Path:
        root = self.cfg.train.warm_start_cache
        return Path(root) if root else Path(self.cfg.output_dir).parent / "warm_starts"

    @property
    def cache(self) -> WarmStartCache:
        """The warm-start cache, keyed on this trial's dataset, precision, device and seed."""
        name = self.dataset.path.name
        return WarmStartCache(
            self.warm_start_root, name, self.precision, self.device.type, self.cfg.seed
        )

    @property
    def precision(self) -> str:
        return resolve_trainer_precision(self.cfg.train.precision, self.device)

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = torch.bfloat16 if self.precision.startswith("bf16") else torch.float32
        return autocast_context(self.device, dtype)

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
        train = self.cfg.train
        return L.Trainer(
            accelerator="gpu" if self.device.type == "cuda" else "cpu",
            devices=train.devices,
            num_nodes=train.num_nodes,
            strategy=lightning_strategy(train),
            use_distributed_sampler=False,  # NLADataModule shards the global batch itself
            max_steps=max_steps,
            max_epochs=1 if max_steps == -1 else -1,
            max_time={"minutes": max_minutes} if max_minutes else None,
            precision=self.precision,
            logger=MLFlowLogger(
                experiment_name=self.cfg.mlflow.experiment,
                tracking_uri=mlflow.get_tracking_uri(),
                run_id=self.run_id,
                prefix=prefix,
            )
            if self.leader
            else False,
            callbacks=[*callbacks, StepBar(_BAR_TITLES[prefix])] if self.bars else callbacks,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=self.bars,
            num_sanity_val_steps=0,
            limit_val_batches=1.0 if val_every else 0,
            val_check_interval=val_every or None,
            check_val_every_n_epoch=None if val_every else 1,
            log_every_n_steps=1,
            default_root_dir=self.run_dir,
        )

    @property
    def bars(self) -> bool:
        """Progress bars: the leader's only, so N ranks draw one."""
        return self.progress and self.leader

    def evaluate(self, av, ar, max_samples: int) -> tuple[dict[str, float], list[dict], RowScores]:
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
            progress=self.bars,
        )


def _cache_key(
    t: _Trial, section: VariantSection, sft: SFTConfig, reads: dict | None = None
) -> str | None:
    """The component's warm-start cache key, or None when the cache is not used (turned off,
    or an SFT run being resumed)."""
    if not t.cfg.train.reuse_warm_start or sft.resume_from:
        return None
    return t.cache.key(section.kind, section, sft, reads)


def _cache_hit(
    t: _Trial, kind: Kind, key: str | None
) -> tuple[torch.nn.Module, dict[str, float]] | None:
    """The finished warm start with this key, loaded from the cache (on the device), or None."""
    cached = t.cache.lookup(kind, key) if key is not None else None
    # every rank trains, or none: the leader decides
    cached = distributed.agree(f"{kind}_cache", None if cached is None else str(cached))
    if cached is None:
        return None
    cached = Path(cached)
    component, meta = load_component(cached, t.ctx)
    t.checkpoints[f"{kind}_checkpoint"] = cached
    if t.leader:
        mlflow.set_tag(f"{kind}_sft.cache", f"hit {cached}")
    figures = {**meta.figures, "cache_hit": 1.0}
    return component.to(t.device).eval(), {f"{kind}_sft/{k}": v for k, v in figures.items()}


def _start(
    t: _Trial, section: VariantSection, sft: SFTConfig
) -> tuple[torch.nn.Module, int, list[L.Callback]]:
    """The component to train, in train mode: built from its config, or resumed from
    `sft.resume_from` (its step, and a callback that restores its optimiser); plus the callback
    writing its periodic checkpoints."""
    kind = section.kind
    offset = 0
    callbacks: list[L.Callback] = []
    if sft.resume_from:
        component, meta = load_component(sft.resume_from, t.ctx)
        offset = meta.step
        callbacks.append(ResumeOptimizer(sft.resume_from))
    else:
        component = section.build(t.ctx)
    if isinstance(component, VerifiesInjection):
        component.verify_injection()
    component.train()
    train_attention(component, t.device)
    if t.cfg.train.gradient_checkpointing:
        enable_gradient_checkpointing(component)
    if sft.checkpoint_every and t.leader:
        ckpt_dir = t.run_dir / f"{kind}_checkpoint"
        callbacks.append(ComponentCheckpoint(sft.checkpoint_every, ckpt_dir, kind, t.ctx))
    return component, offset, callbacks


def _fit_figures(trainer: L.Trainer, module: WarmStart) -> dict[str, float]:
    tokens = distributed.total(module.tokens)  # every rank's
    figures = (
        float(module.step_offset + trainer.global_step),
        float(tokens),
        tokens / max(module.train_seconds, 1e-9),
        float(trainer.callback_metrics.get("train/loss", float("nan"))),
    )
    return dict(zip(FIT_FIGURES, figures, strict=True))


def _keep(
    t: _Trial,
    kind: Kind,
    component: torch.nn.Module,
    sft: SFTConfig,
    key: str | None,
    trainer: L.Trainer | None,
    figures: dict[str, float],
) -> Path:
    """Save a finished warm start: in the cache (weights only) when it is used, and as the
    run's resumable checkpoint (weights, optimiser, schedule) when it is not or when the run
    checkpoints periodically. Returns the checkpoint the run goes on from."""
    step = int(figures["steps"])
    ckpt_dir = t.run_dir / f"{kind}_checkpoint"
    if not t.leader:  # the leader holds the same weights and writes them
        return ckpt_dir
    if key is None or sft.checkpoint_every:
        save_checkpoint(
            ckpt_dir,
            component,
            kind,
            t.ctx,
            step=step,
            optimizer=trainer.optimizers[0] if trainer else None,
            scheduler=trainer.lr_scheduler_configs[0].scheduler if trainer else None,
        )
    if key is not None:
        cached = t.cache.store(kind, key, component, t.ctx, step, figures)
        mlflow.set_tag(f"{kind}_sft.cache", f"stored {cached}")
        if not sft.checkpoint_every:
            ckpt_dir = cached
    return ckpt_dir


def _finish(
    t: _Trial, kind: Kind, component: torch.nn.Module, figures: dict[str, float], ckpt_dir: Path
) -> tuple[torch.nn.Module, dict[str, float]]:
    """Record the component's checkpoint (if one was written) and hand it over for evaluation."""
    if (ckpt_dir / SIDECAR).is_file():
        t.checkpoints[f"{kind}_checkpoint"] = ckpt_dir
    component.to(t.device).eval()
    return component, {f"{kind}_sft/{k}": v for k, v in figures.items()}


# what a stage's fit does with the component, its resumed step and its callbacks: the trainer
# and the figures, or None when nothing is left to train
Fit = Callable[
    [torch.nn.Module, int, list[L.Callback]], tuple[L.Trainer | None, dict[str, float]] | None
]


def _warm_start(
    t: _Trial, section: VariantSection, sft: SFTConfig, fit: Fit, reads: dict | None = None
) -> tuple[torch.nn.Module, dict[str, float]]:
    """One warm start, the AV's or the AR's: the identical finished one from the cache (the key
    holds the dataset, variant config, SFT settings, precision, seed and what it `reads`, so
    trials that differ only downstream share it), or the component built (or resumed), fitted by
    the stage's `fit`, kept and handed over for evaluation."""
    kind = section.kind
    key = _cache_key(t, section, sft, reads)
    L.seed_everything(t.cfg.seed, workers=True, verbose=False)  # independent of the other stage
    hit = _cache_hit(t, kind, key)
    if hit is not None:
        return hit
    component, offset, callbacks = _start(t, section, sft)
    figures = {"steps": float(offset)}
    ckpt_dir = t.run_dir / f"{kind}_checkpoint"
    done = fit(component, offset, callbacks)
    if done is not None:
        trainer, figures = done
        ckpt_dir = _keep(t, kind, component, sft, key, trainer, figures)
    return _finish(t, kind, component, figures, ckpt_dir)


def _warm_start_av(t: _Trial) -> tuple[torch.nn.Module, dict[str, float]]:
    """Warm-start the AV on av_sft, with its held-out NLL-gap check on ar_sft rows (which it
    never trains on)."""
    sft = t.cfg.train.av_sft

    def fit(av, offset: int, callbacks: list[L.Callback]):
        if sft.steps <= offset:
            return None
        start = time.perf_counter()
        keep_best = _held_out_check(sft, callbacks) if sft.eval_every else None
        module = AVWarmStart(av, sft.lr, sft.weight_decay, sft.warmup_steps, sft.steps, offset)
        trainer = t.trainer(
            "av_sft", sft.steps - offset, sft.max_minutes, callbacks, sft.eval_every
        )
        data = NLADataModule(
            t.dataset,
            "av_sft",
            sft.batch_size,
            t.cfg.seed,
            val_split="ar_sft" if sft.eval_every else None,
            val_samples=sft.eval_samples,
            skip_batches=offset,
        )
        trainer.fit(module, datamodule=data)
        figures = _fit_figures(trainer, module)
        if sft.eval_every:
            metrics = trainer.callback_metrics.items()
            figures.update({k.replace("val/", "val_"): float(v) for k, v in metrics})
            figures.pop("train/loss", None)
        if keep_best is not None and keep_best.best is not None:
            figures.update(best_nll_gap=keep_best.best, best_step=float(keep_best.best_step))
        figures["wall_s"] = time.perf_counter() - start
        return trainer, figures

    return _warm_start(t, t.cfg.av, sft, fit)


def _warm_start_ar(t: _Trial, av) -> tuple[torch.nn.Module, dict[str, float]]:
    """Warm-start the AR on ar_sft in the AV's output format (with `av_text`, on the AV's own
    explanations too; with `ridge`, ending on the closed-form head). Its cache key includes
    what it learns to read."""
    sft = t.cfg.train.ar_sft
    render = av.render_target  # e.g. a structured AV's schema
    reads = av.metadata().get("schema")
    if sft.av_text:  # the AR also reads this AV's own explanations
        reads = {"schema": reads, "av": t.cache.key("av", t.cfg.av, t.cfg.train.av_sft)}

    def fit(ar, offset: int, callbacks: list[L.Callback]):
        remaining = max(0, sft.steps - offset)
        if not remaining and not sft.ridge:
            return None
        av_rows = _av_explanations(t, av, sft) if sft.av_text else None
        start = time.perf_counter()
        trainer, figures = None, {"steps": float(offset)}
        if remaining:
            module = ARWarmStart(
                ar, sft.lr, sft.weight_decay, sft.warmup_steps, sft.steps, offset, render=render
            )
            trainer = t.trainer("ar_sft", remaining, sft.max_minutes, callbacks)
            data = NLADataModule(
                t.dataset,
                "ar_sft",
                sft.batch_size,
                t.cfg.seed,
                extra=av_rows,
                extra_share=sft.av_text,
                skip_batches=offset,
                prompts=True,  # the AR reads the prompt as well as the teacher
            )
            trainer.fit(module, datamodule=data)
            figures = _fit_figures(trainer, module)
        if av_rows is not None:
            figures["av_text_rows"] = float(len(av_rows))
        if sft.ridge:
            figures.update(_ridge_readout(t, ar, sft, av_rows, render))
        figures["wall_s"] = time.perf_counter() - start
        return trainer, figures

    return _warm_start(t, t.cfg.ar, sft, fit, reads)


def _teacher_rows(t: _Trial, n: int, render) -> tuple[list[str], np.ndarray, list[str]]:
    """`n` random ar_sft teacher rows (chosen by the seed), in the AV's output format: the rows
    every closed-form AR readout fits on (texts, vectors, source prefixes). Where the teacher
    also stated what it read from the model, each row's text-only explanation is one more row
    (`SplitRows.with_prompts`)."""
    rows = load_split(t.dataset, "ar_sft").with_explanations()
    g = torch.Generator().manual_seed(t.cfg.seed)
    rows = rows.take(torch.randperm(len(rows), generator=g)[:n].tolist()).with_prompts()
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
        "AR readout: features" if t.bars else None,
    )


def _rl_ridge_rows(t: _Trial, av, ar, resume: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Where RL's closed-form AR refit starts: a resumed run's rows, else the fixed AR's
    features of `ar_ridge_rows` teacher rows."""
    saved = load_ridge_rows(resume) if resume is not None else None
    if saved is not None:
        return saved
    rl = t.cfg.train.rl
    texts, vectors, sources = _teacher_rows(t, rl.ar_ridge_rows, av.render_target)
    bar = "RL: AR features of teacher rows" if t.bars else None
    feats = head_features(ar, texts, sources, t.cfg.eval.batch_size, t.autocast, bar)
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
            "av": t.cache.key("av", t.cfg.av, t.cfg.train.av_sft),
            "rows": rows.example_ids,
            "max_new_tokens": t.cfg.eval.max_new_tokens,
        }
        memo = t.cache.av_text_memo(key)
    if distributed.agree("av_text_memo", memo is not None and memo.is_file()):
        explained = json.loads(memo.read_text())
    else:
        with t.autocast():
            _, explained = explain(
                av,
                torch.from_numpy(rows.vectors.copy()),
                t.cfg.eval.batch_size,
                t.cfg.eval.max_new_tokens,
                "AV explanations for the AR" if t.bars else None,
            )
        if memo is not None and t.leader:
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
        reference, _ = load_component(reference_dir, t.ctx)
    else:  # the warm AV as it is saved there, without reading it back (every rank holds it)
        reference_dir = t.checkpoints.get("av_checkpoint", t.run_dir / "av_checkpoint")
        reference = rebuilt(av, "av", t.ctx)
    av.to(t.device).train()
    ar.to(t.device).train()
    reference.to(t.device).requires_grad_(False)
    hold_frozen_weights(reference, t.ctx.frozen_dtype)  # built trainable, so not cast then
    for component in (av, ar, reference):
        train_attention(component, t.device)
    if t.cfg.train.gradient_checkpointing:  # cache hits and resumes too; idempotent
        enable_gradient_checkpointing(av)
        enable_gradient_checkpointing(ar)
    rows = load_split(t.dataset, "rl")

    def on_eval(step: int) -> dict[str, float]:
        av.eval()
        ar.eval()
        scores, *_ = t.evaluate(av, ar, t.cfg.train.rl.eval_samples)
        av.train()
        ar.train()
        picked = {k: scores[k] for k in EVAL_CURVE if k in scores}
        stop = None
        if t.leader:
            mlflow.log_metrics({f"rl/eval/{k}": v for k, v in picked.items()}, step=step)
            try:
                if t.reporter is not None:
                    t.reporter(step, picked)
            except TrialStopped as e:
                stop = e
        if distributed.broadcast(stop is not None):  # a pruned trial stops on every rank
            raise stop or TrialStopped(f"pruned at RL step {step} (by rank 0)")
        return picked

    ridge_rows = _rl_ridge_rows(t, av, ar, resume) if rl.ar_ridge is not None else None
    module = RLModule(av, ar, reference, rows, t.train_mean, rl, t.cfg.seed, start, ridge_rows)
    # the leader's: every rank writes its own RNG states there (a shared filesystem on nodes)
    ckpt_dir = Path(distributed.agree("rl_checkpoint", str(t.run_dir / "rl_checkpoint")))
    callbacks = [
        RLCheckpoint(rl.checkpoint_every, ckpt_dir, t.ctx, reference_dir, resume, t.leader),
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
        keep = t.cfg.train.save_checkpoints
        if keep is True or rl.checkpoint_every:
            save_rl_checkpoint(ckpt_dir, module, t.ctx, reference_dir, t.leader)
            t.checkpoints["rl_checkpoint"] = ckpt_dir
        elif keep == "weights":  # the NLA the evaluation scores, for explain and export
            if t.leader:
                save_rl_weights(ckpt_dir, module, t.ctx)
            t.checkpoints["rl_checkpoint"] = ckpt_dir
        hist = module.history
        parts = [float(np.mean([h[f"time/{p}_s"] for h in hist])) for p in RL_STEP_PARTS]
        steps, wall = float(module.step_no), time.perf_counter() - begin
        figures = dict(zip(RL_FIGURES, (steps, wall, float(module.skipped), *parts), strict=True))
    av.eval()
    ar.eval()
    return av, ar, {f"rl/{k}": v for k, v in figures.items()}


def _log_learning_curve(t: _Trial) -> None:
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
            t = _Trial(
                cfg, ctx, dataset, Path(scratch), "", device, False, train_mean, leader=False
            )
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
            t = _Trial(cfg, ctx, dataset, run_dir, run_id, device, progress, train_mean, reporter)
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


def _run(t: _Trial, dataset_name: str, tags: dict[str, str], stage: StageHook) -> dict[str, Any]:
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


def _stages(t: _Trial, stage: StageHook) -> tuple[dict[str, Any], list[dict], torch.nn.Module]:
    """Warm starts, RL and evaluation, on every rank: (metrics, sample table, AR)."""
    cfg = t.cfg
    metrics: dict[str, Any] = {}
    t0 = time.perf_counter()
    if cfg.train.rl.resume_from:  # the warm start is inside the RL checkpoint
        av = ar = None
    else:
        stage("AV warm start")
        av, figs = _warm_start_av(t)
        metrics.update(figs)
        stage("AR warm start")
        ar, figs = _warm_start_ar(t, av)
        metrics.update(figs)
        if t.leader:  # nla explain/export find them
            write_run_record(t.run_dir, t.checkpoints, t.dataset.path)
    if cfg.train.rl.steps:
        stage("RL")
        av, ar, figs = _rl(t, av, ar)
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
