"""Warm start (SFT) of the AV and the AR as LightningModules.

Both share one optimiser/schedule recipe (AdamW, linear warm-up then cosine decay) and count the
tokens they train on, so throughput is measured, not guessed. The AV's held-out check is the NLL
gap (does it read the vector?), run by Lightning's validation loop every `eval_every` steps;
`KeepBest` and Lightning's `EarlyStopping` act on it. A falling loss alone proves only that the
format was learned.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import lightning as L
import torch
from torch import nn

from nla_variants.common import distributed
from nla_variants.evaluation.evaluation import nll_gap_scores, nll_rows
from nla_variants.training.checkpoint import trainable_state
from nla_variants.training.optim import adamw


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
