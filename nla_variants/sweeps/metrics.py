"""What a sweep may report and optimise: the metric names its trials produce, computed from their
configs before the first trial (`experiment.metric_names`, built from the same names the stages
and the evaluation write), so a misspelt `report:` column or objective is one line now instead
of an empty column, or a failure after a whole trial."""

from __future__ import annotations

import difflib
import re
from typing import Any

from nla_variants.common.errors import NLAError
from nla_variants.sweeps.spec import DEFAULT_REPORT, Sweep
from nla_variants.training.experiment import metric_names

# per-property faithfulness scores: many, so left out of the examples a message lists
_PER_PROPERTY = re.compile(r"^eval/(?:faithful|contradict|probe)_(?!mean$)")
EXAMPLES = 8


def _points(sweep: Sweep) -> list[dict[str, Any]]:
    """Sampled parameters of representative trials: every corner of every parameter (with its
    `when` conditions), the other unconditional parameters at their first, then at their last
    corner (conditional ones keep the base value, as when their condition fails)."""
    space = sweep.cfg.space
    out: list[dict[str, Any]] = []
    for pick in (0, -1):
        others = {n: p.corners()[pick] for n, p in space.items() if not p.when}
        for name, p in space.items():
            conditions = {k: (v[0] if isinstance(v, list) else v) for k, v in p.when.items()}
            out += [{**others, **conditions, name: value} for value in p.corners()]
    return out


def produced(sweep: Sweep) -> list[tuple[dict[str, Any], list[str]]]:
    """(sampled parameters, metric names) of each representative trial; the base trial alone
    if no combination makes a valid config (the per-trial check then says why)."""
    out = []
    for params in _points(sweep):
        try:
            out.append((params, metric_names(sweep.trial_config(params))))
        except NLAError:  # a combination only a real trial can judge
            continue
    return out or [({}, metric_names(sweep.trial_config({})))]


def _examples(metric: str, names: list[str]) -> str:
    close = difflib.get_close_matches(metric, names, n=2, cutoff=0.75)
    common = [n for n in names if not _PER_PROPERTY.match(n)]
    shown = sorted(common, key=lambda n: n not in DEFAULT_REPORT)[:EXAMPLES]  # stable
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    return f"{hint}a trial produces e.g. {', '.join(shown)} ({len(names)} names in all)"


def check_sweep_metrics(sweep: Sweep) -> None:
    """Every `report:` metric is produced by some trial of the sweep, every objective by every
    trial; otherwise an NLAError naming the metric and what trials do produce. The default
    report is not checked: a column none of these trials fills (e.g. the AR on teacher text when
    the teacher skips the eval split) just stays empty."""
    trials = produced(sweep)
    anywhere = list(dict.fromkeys(n for _, names in trials for n in names))
    everywhere = [n for n in anywhere if all(n in names for _, names in trials)]
    written = sweep.cfg.report if "report" in sweep.cfg.model_fields_set else []
    for metric in written:
        if metric not in anywhere:
            raise NLAError(
                f"report metric {metric!r} is not produced by any trial of sweep {sweep.cfg.name}",
                f"{_examples(metric, anywhere)}; fix or remove it under report:",
            )
    for objective in sweep.cfg.objectives:
        metric = objective.metric
        if metric not in anywhere:
            raise NLAError(
                f"objective metric {metric!r} is not produced by any trial of sweep "
                f"{sweep.cfg.name}",
                f"{_examples(metric, everywhere)}; fix it under objectives:",
            )
        if metric not in everywhere:
            lacking = next(params for params, names in trials if metric not in names)
            where = ", ".join(f"{k}={v!r}" for k, v in lacking.items()) or "the base config"
            raise NLAError(
                f"objective metric {metric!r} is not produced by every trial of sweep "
                f"{sweep.cfg.name} (not by one with {where})",
                f"optimise a metric every trial produces ({_examples(metric, everywhere)}), "
                "or change the space so every trial produces it",
            )
