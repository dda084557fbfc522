"""The training bar: one per stage, counted in training steps.

Lightning's own bars count the batches of one epoch and are titled by the epoch; a warm start
trains to `max_steps` with `max_epochs=-1`, so they read "Epoch 0/-2" and start over at every
pass through the data. This one reads "AV warm start  37/64 [00:41<00:30, train/loss=2.31]".
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


class StepBar(ProgressBar):
    """A tqdm bar over one fit's training steps (its loader's items when max_steps is -1, as in
    RL, where each item is one step), with the metrics logged with prog_bar=True."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.enabled = True
        self.bar: tqdm | None = None

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def print(self, *args: Any, **kwargs: Any) -> None:
        tqdm.write(" ".join(str(a) for a in args))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        steps = trainer.max_steps if trainer.max_steps > 0 else trainer.num_training_batches
        total = None if math.isinf(steps) else int(steps)
        self.bar = tqdm(
            total=total,
            desc=self.title,
            unit="step",
            leave=False,
            dynamic_ncols=True,
            disable=not self.enabled,
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        if self.bar is not None:
            shown = self.get_metrics(trainer, pl_module)
            shown.pop("v_num", None)  # the MLflow run id: long, and the same for every step
            self.bar.set_postfix(shown, refresh=False)
            self.bar.update(1)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.title} (held-out check)")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.set_description(self.title)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        self.on_train_end(trainer, pl_module)  # a pruned or failed trial leaves no stale bar
