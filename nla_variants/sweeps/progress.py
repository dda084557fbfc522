"""Where a sweep is, one line per trial stage, so a person watching it can follow along:

    trial 2/4, seed 0: AR warm start (3m 12s elapsed, about 9m 40s left)

The estimate is the mean wall time of the seed runs finished so far (this invocation's, and the
completed trials a resumed study already holds) times the runs still to go, less the time the
current run has had. Before any run has finished there is nothing to go on, and the line says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable


def duration(seconds: float) -> str:
    """A short human duration: 42s, 3m 12s, 1h 05m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def progress_line(
    trial: int, total: int | None, seed: int, stage: str, elapsed_s: float, left_s: float | None
) -> str:
    """One progress line; `total` None: a sweep bounded by time only, `left_s` None: no
    estimate yet."""
    where = f"trial {trial}/{total}" if total else f"trial {trial}"
    rest = f"about {duration(left_s)} left" if left_s is not None else "no estimate yet"
    return f"{where}, seed {seed}: {stage} ({duration(elapsed_s)} elapsed, {rest})"


class SweepClock:
    """Elapsed time and the estimate for the rest of one sweep invocation."""

    def __init__(
        self,
        total: int | None,
        seeds: int,
        finished_runs_s: Iterable[float] = (),
        deadline: float | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.seeds, self.deadline, self._now = total, seeds, deadline, now
        self.runs_s = list(finished_runs_s)  # wall time of each finished seed run
        self.start = self.run_start = now()

    def start_run(self) -> None:
        self.run_start = self._now()

    def end_run(self) -> None:
        self.runs_s.append(self._now() - self.run_start)

    def left_s(self, runs_to_go: int, running: bool) -> float | None:
        """Seconds to the end of the sweep: `runs_to_go` seed runs not finished yet, the first
        of them `running` since start_run. A sweep bounded by time only: time to its deadline."""
        now = self._now()
        if self.total is None:
            return None if self.deadline is None else max(0.0, self.deadline - now)
        if not self.runs_s:
            return None
        mean = sum(self.runs_s) / len(self.runs_s)
        if running and runs_to_go > 0:
            return mean * (runs_to_go - 1) + max(0.0, mean - (now - self.run_start))
        return mean * max(0, runs_to_go)

    def line(self, trial: int, seed_index: int, seed: int, stage: str, done: bool = False) -> str:
        """The line for seed run `seed_index` (0-based) of trial `trial` (1-based) at `stage`;
        `done`: that run has just finished."""
        trials_after = (self.total or 0) - trial
        to_go = trials_after * self.seeds + self.seeds - seed_index - int(done)
        left = self.left_s(to_go, running=not done)
        return progress_line(trial, self.total, seed, stage, self._now() - self.start, left)
