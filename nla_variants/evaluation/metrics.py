"""The metric registry: every evaluation metric registered once, by name, with which direction is
better, a one-line description, how it is computed and, where it has one, its per-row definition.

    @register_metric("explanation_words", higher=None, description="...", per_row=True)
    def explanation_words(ev: EvalData) -> list[float]: ...

What reads it: `evaluate` (the names it reports, so the trial's metrics and MLflow; a registered
function is called on every evaluation), `metric_names` (what a sweep's `report:` and objectives
may name), `nla compare` (its per-row intervals, `row_specs`, and which direction a verdict calls
better, `higher_is_better`).

The built-ins below are computed together inside `evaluate` (one round trip gives four FVEs):
each names the step of `evaluate` that computes it (`computed_by`). A registered function is
called after them with an `EvalData`, what the evaluation has. The faithfulness scores
(`faithful_P`, `contradict_P`, one per property: `nla_variants/evaluation/faithfulness.py`) are
a family of names that depends on the dataset, and stay outside the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from nla_variants.common.plugins import load_entry_points

ENTRY_POINT_GROUP = "nla_variants.metrics"  # modules whose import registers metrics


@dataclass(frozen=True)
class Ratio:
    """coef * sum(w * num) / sum(w * den) over rows (w: bootstrap row weights)."""

    coef: float
    num: str
    den: str


@dataclass(frozen=True)
class MetricSpec:
    """A metric as columns of the per-row score file: const + sum of ratios; `higher` says which
    direction is better (`nla_variants/sweeps/confidence.py` bootstraps it over rows)."""

    const: float
    ratios: tuple[Ratio, ...]
    higher: bool = True


def fve(mse: str, base: str = "base_mse") -> tuple[Ratio, ...]:
    return (Ratio(-1.0, mse, base),)


@dataclass(frozen=True)
class EvalData:
    """What `evaluate` hands a registered metric function, on the scored eval rows (in order)."""

    example_ids: list[str]
    prefixes: list[str]  # the text each vector was read at the end of
    teacher: list[str | None]  # the teacher's explanations (None: not explained)
    explanations: list[str | None]  # the AV's (None: its tag never closed, or rejected)
    texts: list[str]  # the AV's raw generations
    vectors: torch.Tensor  # [n, d_model], as stored
    roundtrip_mse: torch.Tensor  # [n]: normalised MSE of the AR reading the AV's explanation
    base_mse: torch.Tensor  # [n]: the same for the training-mean prediction
    av: Any
    ar: Any


# columns -> the metric's MetricSpec, or None where the columns cannot give it
RowDefinition = Callable[[set[str]], MetricSpec | None]


@dataclass(frozen=True)
class Metric:
    name: str
    higher: bool | None  # True: higher is better; False: lower; None: neither (a diagnostic)
    description: str
    computed_by: str  # the step of `evaluate` that computes a built-in, or the function's name
    compute: Callable[[EvalData], Any] | None = None  # None: a built-in of `evaluate`
    teacher: bool = False  # only where the eval rows have teacher explanations
    per_row: bool = False  # `compute` returns one value per row (its mean is the metric)
    rows: RowDefinition | None = None  # the per-row definition `nla compare` bootstraps


_REGISTRY: dict[str, Metric] = {}
_loaded_plugins = False


def _ensure_loaded() -> None:
    """Import the entry-point group's modules once (they register their metrics)."""
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    load_entry_points(ENTRY_POINT_GROUP, "metric")


def _add(metric: Metric) -> Metric:
    existing = _REGISTRY.get(metric.name)
    if existing is not None and existing.compute is not metric.compute:
        raise ValueError(f"metric {metric.name!r} is already registered ({existing.computed_by})")
    _REGISTRY[metric.name] = metric
    return metric


def register_metric(
    name: str,
    *,
    higher: bool | None,
    description: str,
    teacher: bool = False,
    per_row: bool = False,
) -> Callable[[Callable[[EvalData], Any]], Callable[[EvalData], Any]]:
    """Decorator: `evaluate` calls the function with an `EvalData` and reports what it returns
    as `name` (in the trial's metrics as `eval/NAME`, so in MLflow, a sweep's report and its
    objectives). It returns a float, or None where the rows do not define it. With `per_row` it
    returns one value per row: the metric is their mean, the values go to the per-row score
    file as column `name`, and `nla compare` gives the metric intervals over rows. `teacher`:
    only where the eval rows have teacher explanations (a sweep then knows which trials have it).
    """

    def decorator(compute: Callable[[EvalData], Any]) -> Callable[[EvalData], Any]:
        rows = _mean_of_column(name, higher) if per_row else None
        where = f"{compute.__module__}.{compute.__qualname__}"
        _add(Metric(name, higher, description, where, compute, teacher, per_row, rows))
        return compute

    return decorator


def _mean_of_column(column: str, higher: bool | None) -> RowDefinition:
    spec = MetricSpec(0.0, (Ratio(1.0, column, "one"),), higher is not False)
    return lambda have: spec if column in have else None


def metrics() -> dict[str, Metric]:
    """Every registered metric, in registration order (the built-ins first)."""
    _ensure_loaded()
    return dict(_REGISTRY)


def group(computed_by: str) -> tuple[str, ...]:
    """The built-in names one step of `evaluate` computes, in order."""
    return tuple(m.name for m in _REGISTRY.values() if m.computed_by == computed_by)


def functions() -> list[Metric]:
    """The registered metric functions `evaluate` calls, in registration order."""
    return [m for m in metrics().values() if m.compute is not None]


def lookup(metric: str) -> Metric | None:
    """The registered metric a logged name is: its last part (`eval/NAME`, `rl/eval/NAME`, RL's
    own `rl/NAME`), or None."""
    return metrics().get(metric.rsplit("/", 1)[-1])


def row_specs(columns: Sequence[str]) -> dict[str, MetricSpec]:
    """By their `eval/` name, the registered metrics a per-row score file with `columns` gives."""
    have = set(columns)
    out: dict[str, MetricSpec] = {}
    for m in metrics().values():
        spec = m.rows(have) if m.rows is not None else None
        if spec is not None:
            out[f"eval/{m.name}"] = spec
    return out


# -- the built-ins, computed inside `evaluate` ---------------------------------------------------


def _builtin(
    name: str,
    computed_by: str,
    higher: bool | None,
    description: str,
    *,
    teacher: bool = False,
    rows: RowDefinition | None = None,
) -> None:
    _add(Metric(name, higher, description, computed_by, None, teacher, False, rows))


def _needs(columns: set[str], spec: MetricSpec) -> RowDefinition:
    return lambda have: spec if columns <= have else None


_builtin("eval_rows", "rows", None, "the number of eval rows scored")
_builtin(
    "ar_empty_fve",
    "empty",
    False,
    "the AR reading an empty explanation: what it gets without one",
)
_builtin(
    "roundtrip_fve",
    "roundtrip",
    True,
    "AV -> explanation -> AR, the headline FVE",
    rows=_needs({"roundtrip_mse", "base_mse"}, MetricSpec(1.0, fve("roundtrip_mse"))),
)
_builtin(
    "roundtrip_shuffled_fve",
    "roundtrip",
    False,
    "the round trip scored against other rows' vectors: the control",
    rows=_needs(
        {"roundtrip_shuffled_mse", "base_mse"}, MetricSpec(1.0, fve("roundtrip_shuffled_mse"))
    ),
)
_builtin(
    "roundtrip_gap",
    "roundtrip",
    True,
    "roundtrip_fve - roundtrip_shuffled_fve",
    rows=_needs(
        {"roundtrip_mse", "roundtrip_shuffled_mse", "base_mse"},
        MetricSpec(0.0, (*fve("roundtrip_mse"), Ratio(1.0, "roundtrip_shuffled_mse", "base_mse"))),
    ),
)
_builtin("roundtrip_fve_raw", "roundtrip", True, "the round trip against the raw-mean baseline")
_builtin(
    "tag_failure_rate",
    "output",
    False,
    "share of generations with no closed tag, or rejected by the AV's extract",
    rows=_needs({"tag_failure"}, MetricSpec(0.0, (Ratio(1.0, "tag_failure", "one"),), False)),
)
_builtin(
    "schema_violation_rate",
    "output",
    False,
    "share of generations with a closed tag but an invalid format",
)
_builtin("quote_rate", "output", False, "share of explanation n-grams found in the source prefix")
_builtin("length_mean", "output", None, "mean explanation length in words")
_builtin(
    "ar_teacher_fve",
    "ar_teacher",
    True,
    "the AR alone, reading the teacher's explanations",
    teacher=True,
    rows=_needs(
        {"teacher_mse", "base_mse"}, MetricSpec(1.0, fve("teacher_mse", "base_mse:teacher"))
    ),
)
_builtin(
    "ar_teacher_shuffled_fve",
    "ar_teacher",
    False,
    "the AR on teacher text against other rows' vectors",
    teacher=True,
)
_builtin(
    "ar_teacher_gap",
    "ar_teacher",
    True,
    "ar_teacher_fve - ar_teacher_shuffled_fve",
    teacher=True,
)
_builtin(
    "ar_teacher_fve_raw",
    "ar_teacher",
    True,
    "the AR on teacher text against the raw-mean baseline",
    teacher=True,
)
_builtin(
    "prompt_fve",
    "prompt",
    True,
    "the AR reading an explanation of the text alone: the bar",
    teacher=True,
    rows=_needs(
        {"prompt_mse", "roundtrip_mse", "base_mse"},
        MetricSpec(1.0, fve("prompt_mse", "base_mse:prompt")),
    ),
)
_builtin(
    "beats_prompt",
    "prompt",
    True,
    "roundtrip_fve - prompt_fve on the same rows",
    teacher=True,
    rows=_needs(
        {"prompt_mse", "roundtrip_mse", "base_mse"},
        MetricSpec(
            0.0,
            (
                Ratio(-1.0, "roundtrip_mse:prompt", "base_mse:prompt"),
                Ratio(1.0, "prompt_mse", "base_mse:prompt"),
            ),
        ),
    ),
)
_builtin("beats_prompt_low", "prompt", True, "beats_prompt's 95% interval, low end", teacher=True)
_builtin("beats_prompt_high", "prompt", True, "beats_prompt's 95% interval, high end", teacher=True)
_builtin(
    "av_nll_real",
    "nll_gap",
    None,
    "NLL per token of the teacher explanations given their own vectors",
    teacher=True,
)
_builtin(
    "av_nll_shuffled",
    "nll_gap",
    None,
    "NLL per token of the teacher explanations given other rows' vectors",
    teacher=True,
)
_builtin(
    "av_nll_gap",
    "nll_gap",
    True,
    "av_nll_shuffled - av_nll_real: the AV reads its vector",
    teacher=True,
    rows=_needs(
        {"nll_real", "nll_shuffled", "nll_tokens"},
        MetricSpec(0.0, (Ratio(1.0, "nll_gap", "nll_tokens"),)),
    ),
)
_builtin(
    "av_nll_gap_per_explanation",
    "nll_gap",
    True,
    "the NLL gap in nats per explanation",
    teacher=True,
)
_builtin(
    "av_nll_win_rate",
    "nll_gap",
    True,
    "share of rows whose own vector gives the lower NLL",
    teacher=True,
)
