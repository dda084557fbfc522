"""Progress a person can follow: the sweep's line per trial stage (trial i/n, seed, stage,
elapsed, estimate for the rest) and the training bar counted in steps. No model needed."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from nla_variants.sweeps.progress import SweepClock, duration, progress_line
from nla_variants.training.experiment import STAGES
from nla_variants.training.progress import StepBar


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.4, "42s"), (59.6, "1m 00s"), (192, "3m 12s"), (3900, "1h 05m"), (-3, "0s")],
)
def test_durations_are_short_and_human(seconds, text):
    assert duration(seconds) == text


def test_the_progress_line_names_trial_seed_stage_elapsed_and_the_rest():
    line = progress_line(2, 4, 0, "AR warm start", 192, 580)
    assert line == "trial 2/4, seed 0: AR warm start (3m 12s elapsed, about 9m 40s left)"
    assert progress_line(1, 4, 7, "prepare", 5, None) == (
        "trial 1/4, seed 7: prepare (5s elapsed, no estimate yet)"
    )
    assert progress_line(3, None, 0, "RL", 61, 30).startswith("trial 3, seed 0: RL (1m 01s")


def test_every_stage_of_a_trial_has_a_name():
    assert STAGES == ("prepare", "AV warm start", "AR warm start", "RL", "evaluation")


def test_the_estimate_is_the_mean_run_times_the_runs_to_go():
    now = FakeClock()
    clock = SweepClock(total=3, seeds=2, now=now)
    clock.start_run()
    assert clock.line(1, 0, 0, "AV warm start").endswith("(0s elapsed, no estimate yet)")
    now.t += 60
    clock.end_run()  # one run: 60 s; five to go after it
    assert clock.line(1, 0, 0, "finished", done=True).endswith(
        "(1m 00s elapsed, about 5m 00s left)"
    )
    clock.start_run()
    now.t += 20  # the current run has had 20 s of its expected 60
    assert clock.line(1, 1, 1, "RL") == "trial 1/3, seed 1: RL (1m 20s elapsed, about 4m 40s left)"
    now.t += 100  # longer than the mean: the current run counts as about to end
    assert clock.left_s(runs_to_go=5, running=True) == 4 * 60


def test_a_resumed_sweep_estimates_from_the_trials_already_done():
    clock = SweepClock(total=4, seeds=1, finished_runs_s=[30.0, 50.0], now=FakeClock())
    assert clock.line(3, 0, 0, "prepare").endswith("about 1m 20s left)")  # 40 + 40


def test_a_sweep_bounded_by_time_counts_down_to_its_deadline():
    now = FakeClock()
    clock = SweepClock(total=None, seeds=1, deadline=now.t + 600, now=now)
    assert clock.line(5, 0, 0, "evaluation") == (
        "trial 5, seed 0: evaluation (0s elapsed, about 10m 00s left)"
    )


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        loss = ((self.w - batch) ** 2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class WatchedBar(StepBar):
    """Keeps what the bar showed when training ended."""

    def on_train_end(self, trainer, pl_module) -> None:
        self.seen = (self.bar.n, self.bar.total, self.bar.postfix)
        super().on_train_end(trainer, pl_module)


@pytest.mark.parametrize(("max_steps", "max_epochs", "total"), [(5, -1, 5), (-1, 1, 2)])
def test_the_training_bar_counts_steps_not_epochs(capsys, max_steps, max_epochs, total):
    """max_steps over several passes (a warm start), or one pass of steps (RL)."""
    bar = WatchedBar("AV warm start")
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        max_epochs=max_epochs,
        callbacks=[bar],
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(torch.ones(2, 1), batch_size=1))
    assert bar.seen[:2] == (total, total) and "train/loss=" in bar.seen[2]
    err = capsys.readouterr().err
    assert "AV warm start:" in err and f" 0/{total} [" in err and "step/s" in err
    assert "Epoch" not in err
