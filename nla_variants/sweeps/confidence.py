"""How sure a comparison is: intervals over rows and seeds, paired differences, Holm verdicts, power.

Why: every trial of a study scores the same eval rows at the same seeds, so two presets can be
compared row by row and seed by seed; the shared difficulty of a row and the shared luck of a seed
cancel in the difference. Means alone (the old `nla compare`) could not tell 0.02 from noise.

The model behind it: a metric is a ratio of sums over rows (an FVE is 1 - sum(mse)/sum(base), a
faithful share is sum(flag)/sum(scored), the NLL gap is sum(shuffled - real)/sum(tokens)), or a
sum of such ratios (a gap, `beats_prompt`, a mean over properties). A preset's estimate is the mean
over its seeds of the metric on all rows. Its variance has two parts:
- rows: the eval rows are a sample; a bootstrap over rows (the same draw for every seed and, in a
  difference, for both presets) gives the variance of the seed-averaged estimate;
- seeds: training is a sample too; the spread of the per-seed estimates over S seeds, / S.
The interval is estimate +- sqrt(z^2 rows + t(S-1)^2 seeds): a normal quantile for the rows
part, Student's for the seeds part (wide with few seeds; one seed has no seeds part, and says
so). Simulated (tests/test_confidence.py), 3 seeds x 128 rows: 95% intervals cover a known
difference 94.8% of the time and call identical presets unresolved 95.7% (1,500 studies each);
2 seeds cover only about 91%. A paired
difference is the same on the per-seed, per-row differences. Verdicts: the two-sided p of each
difference, Holm-corrected over every (preset, metric) comparison of the table; better or worse
where the corrected p is below alpha, unresolved otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import brentq

# MetricSpec, Ratio and fve are defined with the metric registry (tools/cross.py reads them here)
from nla_variants.evaluation.metrics import MetricSpec, Ratio, fve, row_specs  # noqa: F401
from nla_variants.evaluation.row_scores import TEXT

ALPHA = 0.05
POWER = 0.8
RESAMPLES = 1000


def _flags(prefix: str, names: Sequence[str]) -> tuple[Ratio, ...]:
    return tuple(Ratio(1.0 / len(names), f"{prefix}_{n}", f"{prefix}_{n}:scored") for n in names)


def metric_specs(
    columns: Sequence[str], sample: Mapping[str, np.ndarray] | None = None
) -> dict[str, MetricSpec]:
    """The eval metrics a per-row score file (nla_variants/evaluation/row_scores.py) with `columns` can give,
    by their `eval/` name: the registered metrics' per-row definitions
    (nla_variants/evaluation/metrics.py), then each property's faithfulness scores. Derived
    columns (`:prompt`, `:scored`) are made by `row_arrays`.
    `sample`: one file's arrays; the means over properties then count, as the evaluation does,
    only properties with rows on both sides (a flag needs rows in and out of its state), which
    is a matter of the rows' truth alone, the same for every trial of those rows."""
    have = set(columns)
    out = row_specs(columns)  # the registered metrics' own definitions
    faithful = sorted(c.removeprefix("faithful_") for c in have if c.startswith("faithful_"))
    contradict = sorted(c.removeprefix("contradict_") for c in have if c.startswith("contradict_"))
    for name in faithful:
        out[f"eval/faithful_{name}"] = MetricSpec(0.0, _flags("faithful", [name]))
    for name in contradict:
        spec = MetricSpec(0.0, _flags("contradict", [name]), higher=False)
        out[f"eval/contradict_{name}"] = spec
    both = [n for n in faithful if n in contradict]
    if sample is not None:
        both = [
            n
            for n in both
            if sample[f"faithful_{n}:scored"].sum() > 0
            and sample[f"contradict_{n}:scored"].sum() > 0
        ]
    if both:
        out["eval/faithful_mean"] = MetricSpec(0.0, _flags("faithful", both))
        out["eval/contradict_mean"] = MetricSpec(0.0, _flags("contradict", both), False)
    return out


def row_arrays(table: Mapping[str, Sequence]) -> dict[str, np.ndarray]:
    """The float arrays the ratios read, from one per-row score table (column -> values): NaN
    and null become 0 with a 0 weight in the matching denominator."""
    out: dict[str, np.ndarray] = {}
    n = len(table["example_id"])
    out["one"] = np.ones(n)
    for name, values in table.items():
        if name in TEXT:
            continue
        if name.startswith(("faithful_", "contradict_")) or name == "tag_failure":
            scored = np.array([v is not None for v in values])
            out[name] = np.array([bool(v) if v is not None else False for v in values], float)
            out[f"{name}:scored"] = scored.astype(float)
        else:
            out[name] = np.asarray(values, dtype=float)
    for reading in ("teacher", "prompt"):
        mse = out.get(f"{reading}_mse")
        if mse is not None and "base_mse" in out:
            has = ~np.isnan(mse)
            out[f"{reading}_mse"] = np.where(has, mse, 0.0)
            out[f"base_mse:{reading}"] = np.where(has, out["base_mse"], 0.0)
            if reading == "prompt" and "roundtrip_mse" in out:
                out["roundtrip_mse:prompt"] = np.where(has, out["roundtrip_mse"], 0.0)
    if {"nll_real", "nll_shuffled", "nll_tokens"} <= set(out):
        has = ~np.isnan(out["nll_tokens"])
        out["nll_gap"] = np.where(has, out["nll_shuffled"] - out["nll_real"], 0.0)
        out["nll_tokens"] = np.where(has, out["nll_tokens"], 0.0)
    return out


def _value(spec: MetricSpec, arrays: Mapping[str, np.ndarray], weights: np.ndarray) -> np.ndarray:
    """The metric under each row weighting: weights [B, n] -> [B]."""
    total = np.full(weights.shape[0], spec.const)
    for r in spec.ratios:
        num, den = weights @ arrays[r.num], weights @ arrays[r.den]
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total + r.coef * num / den
    return total


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95% interval, the variance parts behind it and, for a difference from a
    reference preset, its p and verdict."""

    mean: float
    var_rows: float  # the eval rows' part of the estimate's variance (shrinks as 1/rows)
    var_seeds: float  # training's part (shrinks as 1/seeds); 0 with one seed: not measured
    seeds: int
    rows: int  # 0: from seeds alone (no per-row file)
    p: float = math.nan
    verdict: str = ""

    def half_width(self, alpha: float = ALPHA) -> float:
        """sqrt(z^2 rows part + t(seeds - 1)^2 seeds part): a normal quantile where the rows
        dominate (hundreds of them), Student's where few seeds do."""
        if self.seeds < 2 and not self.rows:
            return math.nan
        z = stats.norm.ppf(1 - alpha / 2)
        t = stats.t.ppf(1 - alpha / 2, self.seeds - 1) if self.seeds > 1 else 0.0
        return math.sqrt(z * z * self.var_rows + t * t * self.var_seeds)

    @property
    def low(self) -> float:
        return self.mean - self.half_width()

    @property
    def high(self) -> float:
        return self.mean + self.half_width()

    @property
    def seeds_measured(self) -> bool:
        """False with one seed: the interval is over rows only, blind to training noise."""
        return self.seeds > 1

    def resolvable(self, alpha: float = ALPHA, power: float = POWER) -> float:
        """The smallest true difference this design resolves with `power` at `alpha` (the same
        rule as `half_width`, with the power quantile added); NaN without an interval."""
        if not math.isfinite(self.half_width()):
            return math.nan
        return _detectable(self.var_rows, self.var_seeds, self.seeds, alpha, power)


def _detectable(var_rows: float, var_seeds: float, seeds: int, alpha: float, power: float) -> float:
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    t = stats.t.ppf(1 - alpha / 2, seeds - 1) + stats.t.ppf(power, seeds - 1) if seeds > 1 else 0
    return math.sqrt(z * z * var_rows + t * t * var_seeds)


def row_estimate(
    spec: MetricSpec,
    seeds: Sequence[Mapping[str, np.ndarray]],
    reference: Sequence[Mapping[str, np.ndarray]] | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """A preset's metric (or, with `reference`, its difference from the reference preset) over
    its seeds' per-row arrays, all aligned on the same rows (and the reference's seeds paired
    with these, seed by seed).

    One bootstrap draw of rows serves every seed (and both presets): the spread of the
    seed-averaged estimate over draws is the rows part. The per-seed estimates also differ by
    the rows' noise that does not repeat from seed to seed (row x seed); that part is already in
    the rows part, so it is taken out of their spread before it becomes the seeds part."""
    n = len(seeds[0]["one"])
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)])

    def values(arrays_by_seed: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
        return np.stack([_value(spec, a, weights) for a in arrays_by_seed])  # [S, 1 + B]

    v = values(seeds)
    if reference is not None:
        v = v - values(reference)
    s = len(v)
    if not np.isfinite(v[:, 0]).all():  # no row defines it (e.g. a property no row has)
        return Estimate(math.nan, math.nan, math.nan, s, n)
    average = v.mean(0)  # the seed-averaged estimate, then under each row draw
    with warnings.catch_warnings():  # a draw without a scored row is NaN and left out
        warnings.simplefilter("ignore", RuntimeWarning)
        var_rows = float(np.nanvar(average[1:], ddof=1))
        each = float(np.nanmean(np.nanvar(v[:, 1:], axis=1, ddof=1)))  # one seed's rows part
    var_seeds = 0.0
    if s > 1:
        row_by_seed = max(0.0, (each - var_rows) * s / (s - 1))
        var_seeds = max(0.0, float(np.var(v[:, 0], ddof=1)) - row_by_seed) / s
    return Estimate(float(average[0]), var_rows, var_seeds, s, n)


def seed_estimate(values: Sequence[float], reference: Sequence[float] | None = None) -> Estimate:
    """From per-seed means alone (no per-row file): a t interval over seeds (none for one)."""
    v = np.asarray(values, float)
    if reference is not None:
        v = v - np.asarray(reference, float)
    var = float(np.var(v, ddof=1)) / len(v) if len(v) > 1 else 0.0
    return Estimate(float(v.mean()), 0.0, var, len(v), 0)


def p_value(e: Estimate) -> float:
    """The two-sided p of a difference: the alpha at which its interval just reaches 0."""
    width = e.half_width(0.5)
    if not math.isfinite(width):
        return math.nan
    if width == 0:
        return 0.0 if e.mean != 0 else 1.0
    if abs(e.mean) <= width:  # inside the 50% interval: p >= 0.5; solve from there
        low, high = 0.5, 1.0
    else:
        low, high = 1e-15, 0.5
    if abs(e.mean) >= e.half_width(low):
        return low
    return float(brentq(lambda a: e.half_width(a) - abs(e.mean), low, high, xtol=1e-12))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p values (step-down; NaN stays NaN and is not counted)."""
    p = np.asarray(pvalues, float)
    index = [i for i in np.argsort(p) if not math.isnan(p[i])]
    m = len(index)
    out = np.full(len(p), math.nan)
    running = 0.0
    for k, i in enumerate(index):
        running = max(running, min(1.0, (m - k) * p[i]))
        out[i] = running
    return out.tolist()


def verdicts(
    differences: Sequence[Estimate], higher: Sequence[bool], alpha: float = ALPHA
) -> list[Estimate]:
    """Each difference with its Holm-corrected p and a verdict: better, worse or unresolved."""
    raw = [p_value(d) for d in differences]
    adjusted = holm(raw)
    out = []
    for d, p, up in zip(differences, adjusted, higher, strict=True):
        if math.isnan(p) or p >= alpha:
            word = "unresolved"
        else:
            word = "better" if (d.mean > 0) == up else "worse"
        out.append(Estimate(**{**d.__dict__, "p": p, "verdict": word}))
    return out


def needed(e: Estimate, delta: float, alpha: float = ALPHA, power: float = POWER) -> dict:
    """How many seeds (rows as they are) or rows (seeds as they are) resolve a true difference
    `delta` with `power`: {"seeds": int | None, "rows": int | None}; None where that alone
    cannot (the other part is already too wide), or with one seed, whose training noise is not
    measured."""
    out: dict[str, int | None] = {"seeds": None, "rows": None}
    delta = abs(delta)
    if not e.seeds_measured or delta == 0:
        return out
    for s in range(2, 1001):  # the t quantile moves with the seeds: search
        if _detectable(e.var_rows, e.var_seeds * e.seeds / s, s, alpha, power) <= delta:
            out["seeds"] = s
            break
    if e.rows:
        for r in np.unique(np.geomspace(2, 10**6, 400).astype(int)):
            if _detectable(e.var_rows * e.rows / r, e.var_seeds, e.seeds, alpha, power) <= delta:
                out["rows"] = int(r)
                break
    return out
