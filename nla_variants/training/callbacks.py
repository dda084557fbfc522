"""The Lightning callbacks a trial's stages use: periodic resumable checkpoints of a warm start,
the optimiser state restored on resume, and RL's periodic held-out evaluation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L

from nla_variants.training.checkpoint import load_optimizer_state, save_checkpoint
from nla_variants.variants.registry import BuildContext


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


class ResumeOptimizer(L.Callback):
    """On a resumed warm start, the optimiser state saved beside the checkpoint."""

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
