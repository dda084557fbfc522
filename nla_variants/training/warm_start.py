"""Warm start (SFT) of the AV and the AR: the LightningModules, and the stage's driver
(`warm_start_av`, `warm_start_ar`: the warm-start cache, build or resume, fit, keep).

Both share one optimiser/schedule recipe (AdamW, linear warm-up then cosine decay) and count the
tokens they train on, so throughput is measured, not guessed. The AV's held-out check is the NLL
gap (does it read the vector?), run by Lightning's validation loop every `eval_every` steps;
`KeepBest` and Lightning's `EarlyStopping` act on it. A falling loss alone proves only that the
format was learned.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from nla_variants.common import distributed
from nla_variants.common.io import write_text_atomic
from nla_variants.data.store import SplitRows
from nla_variants.evaluation.evaluation import nll_gap_scores, nll_rows
from nla_variants.evaluation.rollouts import explain
from nla_variants.training.callbacks import ComponentCheckpoint, ResumeOptimizer
from nla_variants.training.checkpoint import (
    SIDECAR,
    load_component,
    save_checkpoint,
    trainable_state,
)
from nla_variants.training.data import NLADataModule, load_split
from nla_variants.training.optim import adamw
from nla_variants.training.readout import refit_head
from nla_variants.training.trial import Trial
from nla_variants.training.warm_start_config import ARSFTConfig, AVSFTConfig, SFTConfig
from nla_variants.variants.interfaces import VerifiesInjection
from nla_variants.variants.large_models import enable_gradient_checkpointing, train_attention
from nla_variants.variants.registry import Kind, VariantSection


def warmup_cosine(warmup: int, total: int, offset: int = 0):
    """LR multiplier: linear warm-up over `warmup` steps, cosine to 10% at `total`."""

    def factor(step: int) -> float:
        s = step + offset
        if s < warmup:
            return (s + 1) / warmup
        progress = min(1.0, (s - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class WarmStart(L.LightningModule):
    """Supervised training of one component; subclasses say how a batch becomes a loss."""

    def __init__(
        self,
        component: nn.Module,
        lr: float,
        weight_decay: float,
        warmup_steps: int,
        total_steps: int,
        step_offset: int = 0,
    ) -> None:
        super().__init__()
        self.component = component
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.step_offset = step_offset  # steps done before a resume
        self.tokens = 0
        self.train_seconds = 0.0
        self._t0 = 0.0

    def batch_tokens(self, batch: dict) -> int:
        raise NotImplementedError

    def compute_loss(self, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def loss_units(self, batch: dict) -> int:
        """What `compute_loss` averages over (rows here; response tokens for the AV)."""
        return len(batch["vectors"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        """With several ranks each holds a share of the global batch; its mean loss is weighted
        by its share of the units, so DDP's average of the gradients is the gradient of the
        mean over the whole batch, as on one device."""
        loss = self.compute_loss(batch)
        self.tokens += self.batch_tokens(batch)
        logged = loss
        if distributed.world_size() > 1:
            units = self.loss_units(batch)
            total = distributed.total(units)
            logged = torch.tensor(distributed.total(loss.item() * units) / total)
            loss = loss * (units * distributed.world_size() / total)
        self.log("train/loss", logged, prog_bar=True, batch_size=len(batch["vectors"]))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val: list[torch.Tensor] = []

    def on_train_batch_start(self, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.train_seconds += time.perf_counter() - self._t0

    def configure_optimizers(self):
        params = [p for p in self.component.parameters() if p.requires_grad]
        opt = adamw(params, self.lr, self.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, warmup_cosine(self.warmup_steps, self.total_steps, self.step_offset)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class AVWarmStart(WarmStart):
    """AV SFT: vector -> teacher explanation, loss on response tokens only."""

    def compute_loss(self, batch: dict) -> torch.Tensor:
        return self.component.sft_loss(batch["vectors"], batch["explanations"])

    def batch_tokens(self, batch: dict) -> int:
        prompt = len(self.component.prompt_ids)
        return sum(prompt + len(r) for r in self.component.encode_responses(batch["explanations"]))

    def loss_units(self, batch: dict) -> int:
        return sum(map(len, self.component.encode_responses(batch["explanations"])))

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        vectors, shuffled = batch["vectors"], batch["shuffled"]
        self._val.append(nll_rows(self.component, vectors, shuffled, batch["explanations"]))

    def on_validation_epoch_end(self) -> None:
        mine = torch.cat(self._val) if self._val else torch.zeros(0, 3)
        scores = nll_gap_scores(distributed.gather_rows(mine))
        self.log_dict({f"val/{k.removeprefix('av_')}": v for k, v in scores.items()})


class KeepBest(L.Callback):
    """Keeps a CPU copy of the trainable weights at the best value of `monitor` (checked after
    every validation) and puts them back when training ends."""

    def __init__(self, monitor: str, mode: str = "max") -> None:
        self.monitor, self.sign = monitor, 1.0 if mode == "max" else -1.0
        self.best: float | None = None
        self.best_step = 0
        self._state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer, module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None or not torch.isfinite(value):
            return
        value = float(value)
        if self.best is None or self.sign * value > self.sign * self.best:
            self.best, self.best_step = value, trainer.global_step
            self._state = {k: v.clone() for k, v in trainable_state(module.component).items()}

    def on_train_end(self, trainer, module) -> None:
        if self._state is not None:
            params = dict(module.component.named_parameters())
            with torch.no_grad():
                for name, value in self._state.items():
                    params[name].copy_(value)


class ARWarmStart(WarmStart):
    """AR SFT: teacher explanation -> vector, normalised MSE. `render` (the AV's
    `render_target`) puts the teacher explanations in the AV's output format first, so the AR is
    warm-started on the form it reads in RL and evaluation (a structured AV's schema)."""

    def __init__(self, *args, render: Callable[[str], str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.render = render

    def _explanations(self, batch: dict) -> list[str]:
        texts = batch["explanations"]
        done = batch.get("rendered") or [False] * len(texts)
        if self.render is None:
            return list(texts)
        return [t if r else self.render(t) for t, r in zip(texts, done, strict=True)]

    def compute_loss(self, batch: dict) -> torch.Tensor:
        return self.component.loss(self._explanations(batch), batch["vectors"], batch["prefixes"])

    def batch_tokens(self, batch: dict) -> int:
        seqs = self.component.sequences(self._explanations(batch), batch["prefixes"])
        return sum(map(len, seqs))


# -- the stage's driver: cache, build or resume, fit, keep --------------------------------------

# The names of what a warm start's fit reports (`metric_names` lists them before a trial runs).
FIT_FIGURES = ("steps", "tokens", "tokens_per_s", "final_loss")
GAP_METRIC = "val/nll_gap"  # logged by AVWarmStart's validation loop


def _cache_key(
    t: Trial, section: VariantSection, sft: SFTConfig, reads: dict | None = None
) -> str | None:
    """The component's warm-start cache key, or None when the cache is not used (turned off,
    or an SFT run being resumed)."""
    if not t.cfg.train.reuse_warm_start or sft.resume_from:
        return None
    return t.cache.key(section.kind, section, sft, reads)


def _cache_hit(
    t: Trial, kind: Kind, key: str | None
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
    t: Trial, section: VariantSection, sft: SFTConfig
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
    t: Trial,
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
    t: Trial, kind: Kind, component: torch.nn.Module, figures: dict[str, float], ckpt_dir: Path
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
    t: Trial, section: VariantSection, sft: SFTConfig, fit: Fit, reads: dict | None = None
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


def warm_start_av(t: Trial) -> tuple[torch.nn.Module, dict[str, float]]:
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


def warm_start_ar(t: Trial, av) -> tuple[torch.nn.Module, dict[str, float]]:
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


def _ridge_readout(
    t: Trial, ar, sft: ARSFTConfig, av_rows: SplitRows | None, render
) -> dict[str, float]:
    """End the AR warm start on the closed-form head (training/readout.py): fitted on
    `ridge_rows` random ar_sft teacher rows (in the AV's format) plus every AV-text row."""
    texts, vectors, sources = t.teacher_rows(sft.ridge_rows, render)
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


def _av_explanations(t: Trial, av, sft: ARSFTConfig) -> SplitRows:
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
