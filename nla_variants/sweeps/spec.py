"""Sweep configs: a base trial, a search space over its dotted keys, sampler, pruner, budget,
seeds and objectives. Everything is validated before a study exists, so a bad sweep leaves
nothing behind.

    name: quickstart
    base: ../configs/train_baseline.yaml  # a trial config (path relative to this file) ...
    trial: {train: {rl: {steps: 4}}}      # ... and/or inline keys merged over it
    space:
      av.injection.site: {choices: [embedding, 1, 10]}
      train.rl.kl_coef: {low: 0.01, high: 0.2, log: true}
      av.k: {low: 1, high: 4, type: int, when: {av.variant: multitoken}}
      arm:                                # named presets: each sets several keys at once
        presets:
          baseline: {}
          lora-av: {av.finetune: lora, av.lora_r: 8}
    seeds: 2                              # each configuration over k seeds: mean and spread
    objectives: [{metric: eval/roundtrip_fve, direction: maximize}]
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from nla_variants.common.errors import NLAError, format_validation_error
from nla_variants.common.hashing import hash_obj
from nla_variants.common.strict import Strict
from nla_variants.config import (
    TrialConfig,
    get_dotted,
    load_config,
    merge,
    read_config,
    set_dotted,
)
from nla_variants.training.preflight import preflight

METRIC_PATTERN = re.compile(r"^(eval|trial|rl|av_sft|ar_sft)/[A-Za-z0-9_./]+$")
DEFAULT_REPORT = [
    "eval/roundtrip_fve",
    "eval/roundtrip_gap",
    "eval/prompt_fve",  # the bar: the AR reading an explanation of the input text alone
    "eval/beats_prompt",  # round trip minus prompt on the same rows (paired interval in MLflow)
    "eval/ar_empty_fve",  # the AR with an empty explanation
    "eval/quote_rate",
    "eval/length_mean",
    "eval/tag_failure_rate",
    "eval/faithful_mean",  # faithfulness to ground truth (nla_variants/evaluation/faithfulness.py) ...
    "eval/contradict_mean",  # ... and the false statements: a Pareto pair with the round trip
    "trial/wall_s",
]


class Param(Strict):
    """One searched key. `choices` makes it categorical; otherwise low/high (float unless
    `type: int`), optionally log-scaled or stepped. `presets` is a categorical over names, each
    setting several dotted keys (the parameter's own name is then just a label). `when`: sampled
    only if those keys (earlier parameters or base values) equal the given value, or one of a
    given list."""

    type: Literal["categorical", "float", "int"] | None = None
    choices: list[Any] | None = None
    presets: dict[str, dict[str, Any]] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind(self) -> Param:
        if self.presets is not None and (not self.presets or self.choices is not None):
            raise ValueError("`presets` needs at least one named preset and no `choices`")
        if self.type is None:  # (no assignment validation: this runs inside the validator)
            categorical = self.choices is not None or self.presets is not None
            object.__setattr__(self, "type", "categorical" if categorical else "float")
        if self.type == "categorical":
            if not self.options():
                raise ValueError("a categorical parameter needs a non-empty `choices` list")
            if any(isinstance(c, dict | list) for c in self.options()):
                raise ValueError("choices must be scalars (use `presets` to set several keys)")
            return self
        if self.low is None or self.high is None:
            raise ValueError("a numeric parameter needs `low` and `high` (or give `choices`)")
        if self.low > self.high:
            raise ValueError("`low` must be <= `high`")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("log scale needs low > 0 and no step")
        return self

    def options(self) -> list[Any]:
        """A categorical's values: its choices, or its preset names."""
        return list(self.presets) if self.presets is not None else list(self.choices or [])

    def corners(self) -> list[Any]:
        """Values that exercise the parameter's extremes (for validation before a study)."""
        if self.type == "categorical":
            return self.options()
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]

    def grid(self, name: str) -> list[Any]:
        if self.type == "categorical":
            return self.options()
        if self.step is None:
            raise NLAError(
                f"grid sampler: parameter {name} has no finite grid",
                f"give {name} `choices` or a `step`",
            )
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        cast = int if self.type == "int" else float
        return [cast(self.low + i * self.step) for i in range(n)]

    def expand(self, name: str, value: Any) -> dict[str, Any]:
        """The dotted keys a sampled value sets."""
        return dict(self.presets[value]) if self.presets is not None else {name: value}

    def when_holds(self, values: dict[str, Any]) -> bool:
        for key, want in self.when.items():
            have = values.get(key)
            if (
                isinstance(want, list)
                and have not in want
                or not isinstance(want, list)
                and have != want
            ):
                return False
        return True


class Sampler(Strict):
    kind: Literal["tpe", "random", "grid"] = "tpe"
    seed: int | None = 0
    n_startup_trials: int = Field(4, ge=0, description="tpe: random trials before modelling")


class Pruner(Strict):
    kind: Literal["median", "hyperband", "none"] = "median"
    n_startup_trials: int = Field(2, ge=0, description="median: trials before pruning starts")
    n_warmup_steps: int = Field(0, ge=0, description="median: RL steps before pruning starts")
    min_resource: int = Field(1, ge=1, description="hyperband: smallest RL step budget")
    reduction_factor: int = Field(3, ge=2)


class Objective(Strict):
    metric: str = "eval/roundtrip_fve"
    direction: Literal["maximize", "minimize"] = "maximize"

    @model_validator(mode="after")
    def _metric(self) -> Objective:
        if not METRIC_PATTERN.match(self.metric):
            raise ValueError(
                f"objective metric {self.metric!r} is not a trial metric "
                "(e.g. eval/roundtrip_fve, eval/quote_rate, trial/wall_s)"
            )
        return self


class SweepMLflow(Strict):
    tracking_uri: str | None = None
    experiment: str | None = None


class SweepConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    base: str | None = Field(None, description="trial config path, relative to the sweep file")
    trial: dict[str, Any] = Field(default_factory=dict, description="keys merged over base")
    space: dict[str, Param] = Field(default_factory=dict)
    sampler: Sampler = Field(default_factory=Sampler)
    pruner: Pruner = Field(default_factory=Pruner)
    n_trials: int | None = Field(None, ge=1, description="trials in total, over all workers")
    timeout_minutes: float | None = Field(None, gt=0, description="per worker invocation")
    seeds: int | list[int] = Field(1, description="k seeds from the base seed, or a list")
    objectives: list[Objective] = Field(default_factory=lambda: [Objective()], min_length=1)
    storage: str | None = Field(None, description="Optuna storage URL; None: SQLite in directory")
    directory: str | None = Field(None, description="None: .nla/sweeps/NAME")
    mlflow: SweepMLflow = Field(default_factory=SweepMLflow)
    report: list[str] = Field(default_factory=lambda: list(DEFAULT_REPORT))

    @model_validator(mode="after")
    def _check(self) -> SweepConfig:
        if isinstance(self.seeds, int) and self.seeds < 1:
            raise ValueError("seeds must be >= 1 (or a list of seeds)")
        if isinstance(self.seeds, list) and (
            not self.seeds or len(set(self.seeds)) != len(self.seeds)
        ):
            raise ValueError("seeds must be a non-empty list of distinct integers")
        if len(self.objectives) > 1 and self.pruner.kind != "none":
            raise ValueError("pruning needs a single objective; set pruner.kind: none")
        if self.n_trials is None and self.timeout_minutes is None and self.sampler.kind != "grid":
            raise ValueError("set n_trials or timeout_minutes (or use the grid sampler)")
        names = list(self.space)
        for i, (name, p) in enumerate(self.space.items()):
            later = [k for k in p.when if k in names[i:]]
            if later:
                raise ValueError(
                    f"space.{name}.when uses {later[0]}, which is not sampled before it"
                )
        if self.sampler.kind == "grid" and any(p.when for p in self.space.values()):
            raise ValueError("the grid sampler cannot take conditional (`when`) parameters")
        return self

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def seed_list(self, base_seed: int) -> list[int]:
        if isinstance(self.seeds, list):
            return list(self.seeds)
        return [base_seed + i for i in range(self.seeds)]

    def sweep_dir(self) -> Path:
        return Path(self.directory or f".nla/sweeps/{self.name}")

    def fingerprint(self) -> str:
        """What makes two invocations the same study (not where results go, not the budget)."""
        keep = self.model_dump(mode="json", exclude={"n_trials", "timeout_minutes", "report"})
        return hash_obj(keep, 16)


def validate_trial(data: dict[str, Any]) -> TrialConfig:
    """TrialConfig from a dict; every failure (pydantic or a variant's) as one NLAError."""
    try:
        return TrialConfig.model_validate(data)
    except ValidationError as e:
        raise NLAError(
            f"config error: {format_validation_error(e)}",
            "use a dotted key of the trial config or a field of the selected variant",
        ) from None


def with_params(base: dict, params: dict[str, Any]) -> dict:
    """The base trial dict with sampled dotted keys set (values kept as typed)."""
    out = copy.deepcopy(base)
    for key, value in params.items():
        set_dotted(out, key, value, what="space key", fix="search leaf keys")
    return out


class Sweep:
    """A validated sweep: its config plus the base trial as a plain dict."""

    def __init__(self, cfg: SweepConfig, base: dict[str, Any], source: Path | None) -> None:
        self.cfg, self.base, self.source = cfg, base, source

    def overrides(self, params: dict[str, Any]) -> dict[str, Any]:
        """Sampled (Optuna) params -> the dotted trial keys they set (presets expanded)."""
        out: dict[str, Any] = {}
        for name, value in params.items():
            p = self.cfg.space.get(name)
            out.update(p.expand(name, value) if p is not None else {name: value})
        return out

    def trial_config(
        self, params: dict[str, Any], seed: int | None = None, name: str | None = None
    ) -> TrialConfig:
        data = with_params(self.base, self.overrides(params))
        if seed is not None:
            data["seed"] = seed
        if name is not None:
            data["name"] = name
        if self.cfg.mlflow.tracking_uri:
            data.setdefault("mlflow", {})["tracking_uri"] = self.cfg.mlflow.tracking_uri
        data.setdefault("mlflow", {})["experiment"] = self.experiment
        return validate_trial(data)

    @property
    def experiment(self) -> str:
        return self.cfg.mlflow.experiment or f"sweep-{self.cfg.name}"

    @property
    def tracking_uri(self) -> str | None:
        """As written (a `${VAR}` is expanded only where it is used)."""
        return self.cfg.mlflow.tracking_uri or get_dotted(self.base, "mlflow.tracking_uri")

    def validate_space(self, against_target: bool = False) -> None:
        """Materialise a trial config at every corner of every parameter (every choice, the
        bounds of a range; with its `when` conditions set), so an unknown key, variant or value
        fails now, in one line. `against_target`: also check each against the target's
        config.json (`training.preflight`: layer, injection site, devices, strategy, ...), which
        resolves the model: the runner does it before the first trial, so a choice that would
        fail every trial it is drawn in stops the sweep before anything is written."""
        if not self.cfg.space:
            raise NLAError(
                f"sweep {self.cfg.name}: the search space is empty",
                "add at least one parameter under `space:` (e.g. train.rl.kl_coef)",
            )
        for name, p in self.cfg.space.items():
            conditions = {k: (v[0] if isinstance(v, list) else v) for k, v in p.when.items()}
            for value in p.corners():
                try:
                    cfg = self.trial_config({**conditions, name: value})
                    if against_target:
                        preflight(cfg)
                except NLAError as e:
                    if against_target and self._base_problem() == e.problem:
                        raise NLAError(f"sweep base trial: {e.problem}", e.fix) from None
                    raise NLAError(
                        f"search space {name}={value!r}: {e.problem.removeprefix('config error: ')}",
                        e.fix,
                    ) from None

    def _base_problem(self) -> str | None:
        """What the target check finds wrong with the base trial itself, if anything: a choice
        that fails alike is the base's fault, and the error should say so."""
        try:
            preflight(self.trial_config({}))
        except NLAError as e:
            return e.problem
        return None

    def grid_space(self) -> dict[str, list[Any]]:
        return {name: p.grid(name) for name, p in self.cfg.space.items()}


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    """Read and validate a sweep config and its base trial; nothing is created."""
    cfg = load_config(path, SweepConfig, overrides)
    source = Path(path)
    base: dict[str, Any] = {}
    if cfg.base:
        base_path = source.parent / cfg.base  # an absolute `base` stays absolute
        if base_path.is_dir():
            raise NLAError(
                f"sweep base config {base_path} is a directory",
                "set `base:` to a trial config's YAML file, relative to the sweep file",
            )
        if not base_path.is_file():
            raise NLAError(
                f"sweep base config {base_path} does not exist",
                "set `base:` to a trial config path relative to the sweep file",
            )
        base = read_config(base_path, "sweep base config")
    base = merge(base, cfg.trial)
    base.setdefault("name", cfg.name)
    # a sweep runs many trials: each keeps its RL weights (what its evaluation scored, for
    # explain and export), not the ~3 GB resumable checkpoint, unless the base asks for it
    if isinstance(base.setdefault("train", {}), dict):  # (not a mapping: validation says so)
        base["train"].setdefault("save_checkpoints", "weights")
    try:
        validate_trial(base)
    except NLAError as e:
        raise NLAError(f"sweep base trial: {e.problem}", e.fix) from None
    sweep = Sweep(cfg, base, source)
    sweep.validate_space()
    if cfg.sampler.kind == "grid":
        sweep.grid_space()  # raises if a parameter has no finite grid
    return sweep
