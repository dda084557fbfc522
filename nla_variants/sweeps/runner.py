"""`nla sweep`: an Optuna study whose objective is `run_trial` over k seeds.

Records: Optuna holds the study (params, values, states, per-seed metrics as user attributes);
MLflow holds a parent run per sweep, a child run per trial (mean and spread over seeds) and the
seeds' runs nested under it (from run_trial). Resumable: a rerun loads the same study; trials a
killed worker left RUNNING are marked FAILED, their MLflow runs (trial and seeds) closed as
INTERRUPTED and their configuration queued again, so no completed trial is lost or repeated.
Several workers share a study through one database URL. Each trial is sampled with the sweep's
seed plus its trial number (unique in the study), so a resumed process or a second worker never
replays the configurations another already drew. A full disk stops the sweep with one line; the
trial it hit is queued again, so rerunning the same command continues. While it runs, each trial
stage is one log line: trial i/n, seed, stage, elapsed and an estimate for the rest (progress.py).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from nla_variants.checks import check_tracking_uri
from nla_variants.common import distributed
from nla_variants.common.errors import DiskFull, NLAError, TrialStopped, is_disk_full, one_line
from nla_variants.common.io import write_yaml_atomic
from nla_variants.common.masking import mask, mask_tree
from nla_variants.config import get_dotted
from nla_variants.evaluation.row_scores import FILE as ROW_SCORES
from nla_variants.sweeps.metrics import check_sweep_metrics
from nla_variants.sweeps.progress import SweepClock
from nla_variants.sweeps.spec import Sweep
from nla_variants.sweeps.storage import (
    check_url,
    check_writable,
    local_lock,
    local_url,
    open_storage,
)
from nla_variants.training.experiment import run_trial

log = logging.getLogger(__name__)
STATE_FILE = "sweep.yaml"
PARENT_TAG = "sweep.parent"


class TrialFailed(Exception):
    """A trial raised; recorded FAILED (Optuna and MLflow) and the study goes on."""


# -- sampling -----------------------------------------------------------------------------------


def suggest(trial: optuna.Trial, sweep: Sweep) -> dict[str, Any]:
    """Sample the space in declaration order; a `when` parameter only where its condition holds
    (on earlier samples or the base config)."""
    values: dict[str, Any] = {}
    keys: dict[str, Any] = {}  # the dotted keys set so far (presets expanded), for `when`
    for name, p in sweep.cfg.space.items():
        lookup = {k: keys[k] if k in keys else get_dotted(sweep.base, k) for k in p.when}
        if not p.when_holds(lookup):
            continue
        if p.type == "categorical":
            values[name] = trial.suggest_categorical(name, p.options())
        elif p.type == "int":
            step = int(p.step or 1)
            values[name] = trial.suggest_int(name, int(p.low), int(p.high), step=step, log=p.log)
        else:
            values[name] = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
        keys.update(p.expand(name, values[name]))
    return values


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """Samples each trial with a fresh sampler seeded by `seed + trial number`. Trial numbers
    are unique in a study (the database assigns them), so a resumed process or a second worker
    never replays another's draws, and one uninterrupted run stays reproducible. Random and
    TPE samplers keep no state between trials but their RNG (TPE reads the study's history)."""

    def __init__(self, make: Callable[[int | None], optuna.samplers.BaseSampler], seed: int | None):
        self._make, self._seed = make, seed
        self._inner = make(seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._inner = self._make(None if self._seed is None else self._seed + trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(
        self, study: optuna.Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, name: str, dist: BaseDistribution
    ) -> Any:
        return self._inner.sample_independent(study, trial, name, dist)

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: list[float] | None,
    ) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def make_sampler(sweep: Sweep) -> optuna.samplers.BaseSampler:
    s = sweep.cfg.sampler
    if s.kind == "grid":
        # already keyed by the trial number (trial k takes point k of a seeded shuffle, later
        # ones an unvisited point): one sampler, one shuffle, for every process
        return optuna.samplers.GridSampler(sweep.grid_space(), seed=s.seed)

    def make(seed: int | None) -> optuna.samplers.BaseSampler:
        if s.kind == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.n_startup_trials)

    return TrialSeededSampler(make, s.seed)


def make_pruner(sweep: Sweep) -> optuna.pruners.BasePruner:
    p = sweep.cfg.pruner
    if p.kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.kind == "hyperband":
        rl_steps = int(get_dotted(sweep.base, "train.rl.steps") or 1)
        return optuna.pruners.HyperbandPruner(
            min_resource=p.min_resource,
            max_resource=max(rl_steps, p.min_resource),
            reduction_factor=p.reduction_factor,
        )
    return optuna.pruners.NopPruner()


# -- aggregation --------------------------------------------------------------------------------


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best finished trial on the first objective (among the Pareto front when there are
    several): the one best.yaml holds and `nla explain SWEEP` reads."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(study.best_trials, key=lambda t: sign * t.values[0])


def aggregate(per_seed: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """metric -> {mean, std, n} over seeds (std is the sample std; 0 for one seed)."""
    out: dict[str, dict[str, float]] = {}
    keys = sorted({k for m in per_seed.values() for k in m})
    for key in keys:
        vals = [m[key] for m in per_seed.values() if key in m and math.isfinite(m[key])]
        if vals:
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
            out[key] = {"mean": float(np.mean(vals)), "std": std, "n": float(len(vals))}
    return out


# -- the study ----------------------------------------------------------------------------------


class SweepRunner:
    """One worker of one sweep."""

    def __init__(self, sweep: Sweep, progress: bool = True, retry_failed: bool = False) -> None:
        self.sweep = sweep
        self.retry_failed = retry_failed
        self.cfg = sweep.cfg
        self.progress = progress
        self.dir = self.cfg.sweep_dir()
        self.local = self.cfg.storage is None
        self.url = local_url(self.dir) if self.local else check_url(self.cfg.storage or "")
        self.tracking_uri = sweep.tracking_uri
        self.parent_id: str | None = None
        self.study: optuna.Study | None = None
        self.storage: optuna.storages.RDBStorage | None = None
        self.clock = SweepClock(self._target(), len(self.cfg.seed_list(0)))

    # setup ------------------------------------------------------------------------------------

    def _open(self) -> optuna.Study:
        if self.local:
            check_writable(self.dir)
            storage = self._open_retrying()
        else:
            storage = self._open_retrying(stale_trial_callback=self._retry)
            check_writable(self.dir)
        self.storage = storage
        study = optuna.create_study(
            storage=storage,
            study_name=self.cfg.name,
            sampler=make_sampler(self.sweep),
            pruner=make_pruner(self.sweep),
            directions=self.sweep.cfg.directions,
            load_if_exists=True,
        )
        fp = study.user_attrs.get("sweep_fingerprint")
        if fp is None:
            study.set_user_attr("sweep_fingerprint", self.cfg.fingerprint())
            study.set_user_attr("objectives", [o.model_dump() for o in self.cfg.objectives])
            study.set_user_attr("report", self.cfg.report)
        elif fp != self.cfg.fingerprint():
            raise NLAError(
                f"study {self.cfg.name!r} in {mask(self.url)} was created by a different sweep "
                "config (space, base, sampler, seeds or objectives changed)",
                "give the changed sweep a new `name:`, or delete the old study to start over",
            )
        return study

    def _open_retrying(self, **kwargs: Any) -> optuna.storages.RDBStorage:
        """Workers starting together (or a reader of a local study, such as `nla compare`, while
        the sweep creates it) may race to create Optuna's tables; the loser retries."""
        for delay in (1.0, 2.0):
            try:
                return open_storage(self.url, **kwargs)
            except NLAError:
                time.sleep(delay)
        return open_storage(self.url, **kwargs)

    def _parent_run(self) -> str:
        """The sweep's MLflow parent run, shared by all workers: the earliest one tagged with
        this study (a worker that raced and created a second one deletes its own)."""
        client = mlflow.MlflowClient()
        exp = mlflow.set_experiment(self.sweep.experiment)
        query = f"tags.`{PARENT_TAG}` = '{self.cfg.name}'"

        def parents() -> list:
            runs = client.search_runs([exp.experiment_id], query, max_results=50)
            return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

        found = parents()
        if found:
            return found[0].info.run_id
        mine = client.create_run(
            exp.experiment_id,
            run_name=f"sweep-{self.cfg.name}",
            tags={PARENT_TAG: self.cfg.name, "sweep.study": self.cfg.name},
        ).info.run_id
        winner = parents()[0].info.run_id
        if winner != mine:
            client.delete_run(mine)
        else:
            client.log_dict(mine, mask_tree(self.sweep.base), "sweep/base_trial.yaml")
            sweep_cfg = mask_tree(self.cfg.model_dump(mode="json"))
            client.log_dict(mine, sweep_cfg, "sweep/sweep.yaml")
        return winner

    def _write_state(self) -> None:
        write_yaml_atomic(
            self.dir / STATE_FILE,
            mask_tree(
                {
                    "name": self.cfg.name,
                    "storage": self.cfg.storage or self.url,  # as written: ${VAR} kept
                    "local": self.local,
                    "tracking_uri": self.tracking_uri,
                    "experiment": self.sweep.experiment,
                    "parent_run_id": self.parent_id,
                    "sweep": self.cfg.model_dump(mode="json", exclude={"storage"}),
                }
            ),
        )

    # failure recovery -------------------------------------------------------------------------

    def _retry(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """A trial whose worker died: every MLflow run it left open (the trial's and its
        seeds') ends KILLED with nla.state INTERRUPTED, and its configuration is queued again
        (FAILED stays in the record; the retry carries `retry_of`)."""
        self._close_open_runs(trial.number)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        log.warning("trial %d was interrupted; its configuration is queued again", trial.number)

    def _close_open_runs(self, number: int) -> None:
        """Runs of trial `number` a dead process left open: still RUNNING, or ended by MLflow
        itself at exit while our nla.state still says RUNNING. Found by the tags every run gets
        at creation, so a seed run killed before its id was recorded is closed too."""
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(self.sweep.experiment)
        if exp is None:
            return
        query = f"tags.`sweep.study` = '{self.cfg.name}' and tags.`sweep.trial` = '{number}'"
        for run in client.search_runs([exp.experiment_id], query, max_results=1000):
            state = run.data.tags.get("nla.state", "RUNNING")
            if run.info.status == "RUNNING" or state == "RUNNING":
                client.set_tag(run.info.run_id, "nla.state", "INTERRUPTED")
                client.set_terminated(run.info.run_id, "KILLED")

    def _recover_local(self, study: optuna.Study) -> None:
        """Local study, lock held: anything RUNNING belongs to a killed worker."""
        # told through a plain view of the study: a sampler's after_trial hook (the grid
        # sampler stops the study when its grid is spent) must not run outside optimize()
        plain = optuna.load_study(
            study_name=study.study_name,
            storage=self.storage,
            sampler=optuna.samplers.RandomSampler(),
        )
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            plain.tell(t.number, state=TrialState.FAIL)
            self._retry(study, t)

    def _requeue_failed(self, study: optuna.Study) -> int:
        """Queue again every FAILED configuration not already finished, queued or running
        (after fixing what made them fail: a full disk, a bad node)."""
        live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
        seen = [t.params for t in study.get_trials(deepcopy=False, states=live)]
        queued = 0
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if t.params and t.params not in seen:
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
                seen.append(t.params)
                queued += 1
        log.info("queued %d failed configuration(s) again", queued)
        return queued

    # the objective ----------------------------------------------------------------------------

    def _reporter(self, trial: optuna.Trial):
        metric = self.cfg.objectives[0].metric.removeprefix("eval/")

        def report(step: int, scores: dict[str, float]) -> None:
            if metric in scores and math.isfinite(scores[metric]):
                trial.report(scores[metric], step)
                if trial.should_prune():
                    raise TrialStopped(f"pruned at RL step {step}")

        return report

    def _stage_logger(self, position: int, seed_index: int, seed: int) -> Callable[[str], None]:
        """run_trial's stage hook: one line per stage, with the sweep's place and clock."""

        def stage(name: str) -> None:
            log.info(self.clock.line(position, seed_index, seed, name))

        return stage

    def objective(self, trial: optuna.Trial) -> list[float]:
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if self._surplus(trial):
            trial.set_user_attr("surplus", True)
            log.info("trial %d: another worker started the sweep's last trial", trial.number)
            raise optuna.TrialPruned("over the sweep's budget")
        params = suggest(trial, self.sweep)
        base_seed = int(self.sweep.base.get("seed", 0))
        seeds = self.cfg.seed_list(base_seed)
        try:
            first = self.sweep.trial_config(params)
        except NLAError as e:  # a combination the per-parameter checks could not see
            trial.set_user_attr("error", one_line(e))
            log.error("trial %d: invalid configuration: %s", trial.number, e)
            raise TrialFailed(one_line(e)) from e
        variants = {
            "av": first.av.variant.name,
            "ar": first.ar.variant.name,
        }
        trial.set_user_attr("variants", variants)
        tags = {
            "sweep.study": self.cfg.name,
            "sweep.trial": str(trial.number),
            "av.variant": variants["av"],
            "ar.variant": variants["ar"],
        }
        client = mlflow.MlflowClient()
        run = mlflow.start_run(
            run_name=f"{self.cfg.name}-trial-{trial.number}",
            tags={**tags, "mlflow.parentRunId": self.parent_id, "nla.role": "trial"},
        )
        run_ids = [run.info.run_id]
        trial.set_user_attr("mlflow_run_ids", run_ids)
        per_seed: dict[str, dict[str, float]] = {}
        seed_rows: dict[str, str] = {}
        prunable = len(self.cfg.objectives) == 1 and self.cfg.pruner.kind != "none"
        position = self._position(trial.study)
        try:
            with run:
                expanded = {**params, **self.sweep.overrides(params)}
                mlflow.log_params({k: mask(str(v))[:500] for k, v in expanded.items()})
                mlflow.set_tag("nla.state", "RUNNING")
                for i, seed in enumerate(seeds):
                    cfg = self.sweep.trial_config(
                        params, seed=seed, name=f"{self.cfg.name}-t{trial.number}-s{seed}"
                    )
                    self.clock.start_run()
                    metrics = run_trial(
                        cfg,
                        progress=self.progress,
                        reporter=self._reporter(trial) if prunable and i == 0 else None,
                        tags={**tags, "sweep.seed": str(seed)},
                        on_stage=self._stage_logger(position, i, seed),
                    )
                    self.clock.end_run()
                    log.info(self.clock.line(position, i, seed, "finished", done=True))
                    run_ids.append(metrics["run_id"])
                    trial.set_user_attr("mlflow_run_ids", run_ids)
                    per_seed[str(seed)] = {
                        k: float(v) for k, v in metrics.items() if isinstance(v, int | float)
                    }
                    trial.set_user_attr("seed_metrics", per_seed)
                    found = Path(cfg.output_dir).resolve() / metrics["run_id"] / ROW_SCORES
                    if found.is_file():  # `nla compare` pairs presets row by row on these
                        seed_rows[str(seed)] = str(found)
                        trial.set_user_attr("seed_rows", seed_rows)
                agg = aggregate(per_seed)
                values = []
                for o in self.cfg.objectives:
                    if o.metric not in agg:
                        raise NLAError(
                            f"objective metric {o.metric} was not produced by the trial",
                            f"use one of: {', '.join(sorted(agg))}",
                        )
                    values.append(agg[o.metric]["mean"])
                mlflow.log_metrics({k: v["mean"] for k, v in agg.items()})
                mlflow.log_metrics({f"{k}.std": v["std"] for k, v in agg.items()})
                mlflow.set_tag("nla.state", "FINISHED")
                return values
        except TrialStopped as e:
            client.set_tag(run.info.run_id, "nla.state", "PRUNED")
            client.set_terminated(run.info.run_id, "KILLED")
            trial.set_user_attr("pruned", str(e))
            raise optuna.TrialPruned(str(e)) from None
        except NLAError as e:
            if e.problem.startswith("objective metric"):
                raise  # the sweep config is wrong: stop the sweep, not just this trial
            self._fail(client, run.info.run_id, trial, e)
            self._stop_if_disk_full(trial, e)
            if distributed.world_size() > 1:
                raise  # the other ranks are inside the trial: end the whole job, not one trial
            raise TrialFailed(one_line(e)) from e
        except Exception as e:
            self._fail(client, run.info.run_id, trial, e)
            self._stop_if_disk_full(trial, e)
            if distributed.world_size() > 1:
                raise  # the other ranks are inside the trial: end the whole job, not one trial
            raise TrialFailed(one_line(e)) from e

    def _stop_if_disk_full(self, trial: optuna.Trial, err: BaseException) -> None:
        """Every later trial would fail the same way: stop the sweep with one line, and queue
        this configuration again so the same command continues once space is freed."""
        if not is_disk_full(err):
            return
        trial.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        if isinstance(err, DiskFull):
            raise err
        raise DiskFull(getattr(err, "filename", None) or self.dir) from None

    @staticmethod
    def _fail(client, run_id: str, trial: optuna.Trial, err: BaseException) -> None:
        trial.set_user_attr("error", one_line(err))
        client.set_tag(run_id, "nla.state", "FAILED")
        client.set_tag(run_id, "nla.error", one_line(err))
        log.error("trial %d failed: %s", trial.number, one_line(err))

    # budget -----------------------------------------------------------------------------------

    def _target(self) -> int | None:
        if self.cfg.n_trials is not None:
            return self.cfg.n_trials
        if self.cfg.sampler.kind == "grid":
            return math.prod(len(v) for v in self.sweep.grid_space().values())
        return None

    def remaining(self, study: optuna.Study) -> int | None:
        """Trials still to start, over all workers. Every trial counts (finished, pruned,
        failed, running) except a failed one whose configuration was queued again (a killed
        worker's trial, or `--retry-failed`): its retry counts instead. Queued trials always run."""
        target = self._target()
        trials = study.get_trials(deepcopy=False)
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        if target is None:
            return None
        return max(target - self._counted(trials), waiting)

    @staticmethod
    def _counted(trials: list[FrozenTrial]) -> int:
        """Trials that count against the budget (see `remaining`)."""
        retried = {t.user_attrs.get("retry_of") for t in trials}
        return sum(
            t.state != TrialState.WAITING
            and not (t.state == TrialState.FAIL and t.number in retried)
            for t in trials
        )

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Two workers can both see one trial left and both start one: the later-numbered of
        them is over the budget and stops before it samples (queued retries always run)."""
        target = self._target()
        if target is None or "retry_of" in trial.user_attrs:
            return False
        earlier = [t for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number]
        return self._counted(earlier) >= target

    def _position(self, study: optuna.Study) -> int:
        """The running trial's place in the sweep, 1-based (it counts itself)."""
        place = self._counted(study.get_trials(deepcopy=False))
        target = self._target()
        return min(place, target) if target else place

    def _finished_runs_s(self, study: optuna.Study) -> list[float]:
        """Wall time per seed run of the trials the study has completed: a resumed sweep's
        estimate starts from them."""
        out = []
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.duration is not None:
                seeds = len(t.user_attrs.get("seed_metrics", {})) or self.clock.seeds
                out += [t.duration.total_seconds() / seeds] * seeds
        return out

    # run --------------------------------------------------------------------------------------

    def run(self) -> optuna.Study:
        self.sweep.validate_space(against_target=True)  # every choice, before anything is written
        check_sweep_metrics(self.sweep)  # report and objectives: names some trial produces
        check_tracking_uri(self.tracking_uri)
        if self.tracking_uri:
            mlflow.set_tracking_uri(os.path.expandvars(self.tracking_uri))
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own one-line trial reports
        if self.local:
            check_writable(self.dir)
        guard = local_lock(self.dir) if self.local else nullcontext()
        with guard:
            study = self._open()
            self.study = study
            self.parent_id = self._parent_run()
            if self.local:
                self._recover_local(study)
            if self.retry_failed:
                self._requeue_failed(study)
            self._write_state()
            deadline = (
                time.monotonic() + 60 * self.cfg.timeout_minutes
                if self.cfg.timeout_minutes
                else None
            )
            self.clock = SweepClock(
                self._target(), self.clock.seeds, self._finished_runs_s(study), deadline
            )
            while True:
                left = self.remaining(study)
                if left is not None and left <= 0:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                study.optimize(self.objective, n_trials=1, catch=(TrialFailed,))
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:  # the last worker out closes the sweep's parent run
                mlflow.MlflowClient().set_terminated(self.parent_id, "FINISHED")
            self.export_best(study)
        return study

    # outputs ----------------------------------------------------------------------------------

    def export_best(self, study: optuna.Study) -> list[Path]:
        """best.yaml: the best configuration as a complete, ready-to-run trial config (for
        several objectives, every Pareto-optimal one under pareto/, best.yaml the best on the
        first objective among them)."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not done:
            return []
        written: list[Path] = []
        best = study.best_trials
        if len(self.cfg.objectives) > 1:
            for t in best:
                path = self.dir / "pareto" / f"trial-{t.number}.yaml"
                write_yaml_atomic(path, self._ready_config(t))
                written.append(path)
        top = best_trial(study)
        path = self.dir / "best.yaml"
        write_yaml_atomic(path, self._ready_config(top))
        written.append(path)
        client = mlflow.MlflowClient()
        for p in written:
            client.log_artifact(
                self.parent_id, str(p), "best" if p.name == "best.yaml" else "pareto"
            )
        return written

    def _ready_config(self, t: FrozenTrial) -> dict:
        cfg = self.sweep.trial_config(t.params, name=f"{self.cfg.name}-best-t{t.number}")
        data = cfg.model_dump(mode="json", exclude_defaults=False)
        data["mlflow"]["experiment"] = f"{self.cfg.name}-best"
        # where the trial's runs are: `nla explain/export SWEEP_DIR` read them from any directory
        data["output_dir"] = str(Path(data["output_dir"]).expanduser().resolve())
        return mask_tree(data)  # a password in a URL setting stays out (use ${VAR} in URLs)
