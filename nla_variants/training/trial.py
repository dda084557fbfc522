"""`Trial`: what every stage of one trial shares (its config, dataset, build context, device,
run directory and MLflow run, the warm-start cache, the trainer it builds, its evaluation).
`run_trial` (`experiment.py`) makes one; the warm starts (`warm_start.py`) and RL (`rl.py`)
take it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import torch
from lightning.pytorch.loggers import MLFlowLogger

from nla_variants.config import TrialConfig
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation.evaluation import evaluate
from nla_variants.evaluation.faithfulness import Faithfulness
from nla_variants.evaluation.row_scores import RowScores
from nla_variants.target import autocast_context, resolve_precision
from nla_variants.training.data import load_split
from nla_variants.training.progress import StepBar
from nla_variants.training.strategy import lightning_strategy
from nla_variants.training.warm_cache import WarmStartCache
from nla_variants.variants.registry import BuildContext

# Called with (RL step, intermediate eval metrics); may raise TrialStopped (a sweep's pruner).
Reporter = Callable[[int, dict[str, float]], None]
_BAR_TITLES = {"av_sft": "AV warm start", "ar_sft": "AR warm start", "": "RL"}  # by prefix


def resolve_trainer_precision(precision: str, device: torch.device) -> str:
    """The Lightning precision string; `auto` follows `target.resolve_precision`."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if resolve_precision("auto", device) == torch.bfloat16 else "32-true"


@dataclass
class Trial:
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

    def teacher_rows(self, n: int, render) -> tuple[list[str], np.ndarray, list[str]]:
        """`n` random ar_sft teacher rows (chosen by the seed), in the AV's output format: the rows
        every closed-form AR readout fits on (texts, vectors, source prefixes). Where the teacher
        also stated what it read from the model, each row's text-only explanation is one more row
        (`SplitRows.with_prompts`)."""
        rows = load_split(self.dataset, "ar_sft").with_explanations()
        g = torch.Generator().manual_seed(self.cfg.seed)
        rows = rows.take(torch.randperm(len(rows), generator=g)[:n].tolist()).with_prompts()
        texts = [render(e) for e in rows.explanations] if render else list(rows.explanations)
        return texts, rows.vectors, list(rows.prefixes)
