"""`nla compare`: a variant x metric table of a sweep (mean [95% interval], spread over seeds, n)
sorted by the objective, as a rich table, CSV and Markdown, plus plots (optimisation history,
parameter importances, Pareto front, each eval metric's estimates beside their controls, round
trip against contradictions) saved as files and logged to the sweep's MLflow run. With a reference preset, each preset's paired difference from it, its interval and a
Holm-corrected verdict (better, worse, unresolved), and what the study can resolve.

Reads the Optuna study (per-seed metrics are stored on each trial, and the paths of the per-seed
per-row score files in `seed_rows`), so it works on any study that `nla sweep` wrote, including
one assembled by hand or written before the per-row files: its intervals then come from seeds
alone, and the table says so (nla_variants/sweeps/confidence.py).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nla_variants.common.errors import NLAError
from nla_variants.common.io import write_text_atomic
from nla_variants.evaluation.metrics import lookup
from nla_variants.evaluation.row_scores import read_row_scores
from nla_variants.sweeps import confidence as C
from nla_variants.sweeps.runner import aggregate
from nla_variants.sweeps.spec import DEFAULT_REPORT

log = logging.getLogger(__name__)
FALLBACK_METRICS = DEFAULT_REPORT


@dataclass
class Row:
    number: int
    state: str
    variant: str
    params: dict[str, Any]
    stats: dict[str, dict[str, float]]  # metric -> mean, std, n
    seed_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seed_rows: dict[str, str] = field(default_factory=dict)  # seed -> per-row score file
    intervals: dict[str, C.Estimate] = field(default_factory=dict)  # metric -> estimate
    versus: dict[str, C.Estimate] = field(default_factory=dict)  # metric -> minus the reference

    def label(self) -> str:
        return ", ".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in self.params.items())

    def name(self) -> str:
        """How a table names it: a preset's (or the one parameter's) value, else its label."""
        if len(self.params) == 1:
            return _short(next(iter(self.params.values())))
        return self.label() or str(self.number)

    def names(self) -> set[str]:
        """What `--reference` may call this row: its trial number, preset name or label."""
        return {str(self.number), self.label(), *(str(v) for v in self.params.values())}


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _variant(t: FrozenTrial) -> str:
    v = t.user_attrs.get("variants") or {}
    return f"{v.get('av', 'baseline')}/{v.get('ar', 'baseline')}"


def rows(study: optuna.Study) -> list[Row]:
    """Finished and pruned trials that have per-seed metrics, best first."""
    objectives = study.user_attrs.get("objectives") or [
        {"metric": "eval/roundtrip_fve", "direction": "maximize"}
    ]
    key, direction = objectives[0]["metric"], objectives[0]["direction"]
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        per_seed = t.user_attrs.get("seed_metrics") or {}
        if per_seed:
            stats = aggregate(per_seed)
        elif t.intermediate_values:  # pruned in its first seed: the last value it reported
            step = max(t.intermediate_values)
            stats = {key: {"mean": t.intermediate_values[step], "std": 0.0, "n": 1.0}}
        else:
            continue
        state = t.state.name
        if t.state == TrialState.PRUNED and t.intermediate_values:
            state += f"@{max(t.intermediate_values)}"  # the RL step it was stopped at
        row = Row(t.number, state, _variant(t), dict(t.params), stats, per_seed)
        row.seed_rows = dict(t.user_attrs.get("seed_rows") or {})
        out.append(row)
    sign = -1.0 if direction == "maximize" else 1.0

    def order(r: Row) -> tuple:
        m = r.stats.get(key)
        return (r.state != "COMPLETE", m is None, sign * m["mean"] if m else 0.0, r.number)

    return sorted(out, key=order)


# -- intervals, differences and verdicts (nla_variants/sweeps/confidence.py) ----------------------

# Names outside the metric registry (the faithfulness family, the stages' figures): by name.
LOWER_IS_BETTER = re.compile(r"contradict|wall_s$")


def higher_is_better(metric: str) -> bool:
    """The registered metric's direction (nla_variants/evaluation/metrics.py; a diagnostic with
    neither counts as higher), else the name rule above."""
    known = lookup(metric)
    if known is not None:
        return known.higher is not False
    return not LOWER_IS_BETTER.search(metric)


@dataclass
class Confidence:
    """How `add_confidence` made the intervals: from per-row files over how many common rows
    (0: seeds alone), how many seeds, and the reference row (None without one)."""

    rows: int
    seeds: int
    reference: Row | None
    missing: int  # trial seeds without a per-row file (their intervals come from seeds alone)
    # paired differences the power lines read: each preset's against the reference, or (without
    # one) the second finished preset's against the first
    pairs: list[dict[str, C.Estimate]] = field(default_factory=list)

    def note(self) -> str:
        if self.rows and not self.missing:
            basis = f"95% intervals over {self.rows} paired eval rows"
        elif self.rows:
            basis = (
                f"95% intervals over {self.rows} paired eval rows; {self.missing} trial seeds "
                "have no per-row file, their trials' intervals come from seeds alone"
            )
        else:
            basis = "95% intervals from seeds alone (no per-row score files to pair rows on)"
        if self.seeds > 1:
            basis += f" and {self.seeds} seeds"
        elif self.rows:
            basis += " and one seed: training noise is not in them"
        return basis


def _reference(table: list[Row], name: str) -> Row:
    for r in table:
        if name in r.names() and r.seed_metrics:
            return r
    known = ", ".join(sorted({str(next(iter(r.params.values()), r.number)) for r in table}))
    raise NLAError(
        f"--reference {name} names no finished trial of this sweep",
        f"pass a preset name or trial number (here: {known})",
    )


def _aligned(table: list[Row]) -> tuple[dict[tuple[int, str], dict], list[str]]:
    """Every finished seed's per-row arrays, on the eval rows all of them share (same order)."""
    found: dict[tuple[int, str], dict] = {}
    for r in table:
        for seed, path in r.seed_rows.items():
            if seed in r.seed_metrics and Path(path).is_file():
                found[(r.number, seed)] = read_row_scores(path).to_pydict()
    if not found:
        return {}, []
    ids = [set(t["example_id"]) for t in found.values()]
    common = [e for e in next(iter(found.values()))["example_id"] if all(e in i for i in ids)]
    if len(common) < 2:  # other eval rows (another dataset): nothing to pair on
        log.warning(
            "the trials' per-row files share %d eval rows: intervals from seeds", len(common)
        )
        return {}, []
    arrays = {}
    for key, t in found.items():
        where = {e: i for i, e in enumerate(t["example_id"])}
        order = [where[e] for e in common]
        arrays[key] = C.row_arrays({k: [v[i] for i in order] for k, v in t.items()})
    columns = set.intersection(*(set(t) for t in found.values()))
    return arrays, sorted(columns)


def add_confidence(
    table: list[Row], metrics: list[str], reference: str | None, extra: list[str] = ()
) -> Confidence:
    """Fill each row's `intervals` (and, against `reference`, `versus` with Holm verdicts over
    every (preset, eval metric) difference): paired on the same rows and seeds where the per-row
    files exist, from the per-seed means otherwise. `extra`: metrics that get intervals only
    (the plots' controls), outside the verdicts' correction."""
    arrays, columns = _aligned(table)
    specs = C.metric_specs(columns, next(iter(arrays.values()))) if arrays else {}
    n_rows = len(next(iter(arrays.values()))["one"]) if arrays else 0
    ref = _reference(table, reference) if reference is not None else None
    missing = 0

    def estimate(r: Row, m: str, seeds: list[str], against: Row | None) -> C.Estimate | None:
        rows_ok = m in specs and all(
            (x.number, s) in arrays for x in (r, against) if x for s in seeds
        )
        if rows_ok and seeds:
            mine = [arrays[(r.number, s)] for s in seeds]
            theirs = [arrays[(against.number, s)] for s in seeds] if against else None
            return C.row_estimate(specs[m], mine, theirs)
        values = [r.seed_metrics[s].get(m) for s in seeds]
        base = [against.seed_metrics[s].get(m) for s in seeds] if against else None
        keep = [
            i
            for i, v in enumerate(values)
            if v is not None and (base is None or base[i] is not None)
        ]
        if not keep:
            return None
        return C.seed_estimate([values[i] for i in keep], [base[i] for i in keep] if base else None)

    for r in table:
        seeds = sorted(r.seed_metrics)
        missing += sum((r.number, s) not in arrays for s in seeds)
        for m in [*metrics, *extra]:
            e = estimate(r, m, seeds, None)
            if e is not None:
                r.intervals[m] = e
    if ref is not None:
        keys, diffs = [], []
        for r in table:
            seeds = sorted(set(r.seed_metrics) & set(ref.seed_metrics))
            if r is ref or not seeds:
                continue
            for m in metrics:
                d = estimate(r, m, seeds, ref)
                if d is not None:
                    r.versus[m] = d
                    if m.startswith("eval/"):
                        keys.append((r, m))
                        diffs.append(d)
        judged = C.verdicts(diffs, [higher_is_better(m) for _, m in keys])
        for (r, m), d in zip(keys, judged, strict=True):
            r.versus[m] = d
        pairs = [r.versus for r in table if r.versus]
    else:
        done = [r for r in table if r.seed_metrics]
        pairs = []
        if len(done) >= 2:
            first, second = done[0], done[1]
            seeds = sorted(set(first.seed_metrics) & set(second.seed_metrics))
            pair = {m: estimate(second, m, seeds, first) for m in metrics} if seeds else {}
            pairs = [{m: e for m, e in pair.items() if e is not None}]
    seeds = max((len(r.seed_metrics) for r in table), default=0)
    return Confidence(n_rows, seeds, ref, missing, pairs)


def power_lines(conf: Confidence, metrics: list[str], resolve: float | None = None) -> list[str]:
    """Per metric: the smallest difference the study resolves (80% power, 5% two-sided) for a
    paired comparison of two presets (the median over the pairs `add_confidence` made), and with
    `resolve` the seeds or rows that would resolve that difference."""
    pairs = conf.pairs
    estimates = [e for p in pairs for e in p.values()]
    if estimates and not any(e.seeds_measured for e in estimates):
        return [
            "power: one seed measures no training noise, so this study cannot say which "
            "differences between presets are real; run 2 or more seeds (`seeds:`) to know"
        ]
    lines = []
    for m in metrics:
        if FAITHFUL.match(m) and not m.endswith("_mean"):  # per property: in the CSV only
            continue
        found = [p[m] for p in pairs if m in p and p[m].resolvable() > 0]  # 0: same in both
        if not found:
            continue
        e = sorted(found, key=lambda x: x.resolvable())[(len(found) - 1) // 2]  # the median
        line = f"{m}: resolves differences of {e.resolvable():.3f} or more"
        line += f" ({e.rows} rows, {e.seeds} seed{'s' * (e.seeds != 1)})"
        if resolve is not None:
            need = C.needed(e, resolve)
            parts = [f"{need[k]} {k}" for k in ("seeds", "rows") if need[k]]
            line += f"; {resolve:g} needs {' or '.join(parts) or 'more than seeds or rows alone'}"
        lines.append(line)
    return lines


FAITHFUL = re.compile(r"^eval/(?:faithful|contradict)_[a-z_]+$")
_READERS = ("_probe", "_teacher", "_text_only", "_shuffled", "_n")


def metric_names(study: optuna.Study) -> list[str]:
    """The report's columns, then every per-property faithfulness metric of the AV
    (`eval/faithful_P`, `eval/contradict_P`) the trials logged that the report does not name
    (their baselines stay in MLflow: one pair of columns per property)."""
    names = list(study.user_attrs.get("report") or FALLBACK_METRICS)
    found: dict[str, None] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        for metrics in (t.user_attrs.get("seed_metrics") or {}).values():
            for key in metrics:
                if FAITHFUL.match(key) and not key.endswith(_READERS) and key not in names:
                    found[key] = None
    faithful = sorted(found, key=lambda k: (k.split("_", 1)[1], "/contradict" in k))
    return names + faithful


def _cell(r: Row, m: str) -> str:
    stats, e = r.stats.get(m), r.intervals.get(m)
    if stats is None:
        return "-"
    if e is not None and math.isfinite(e.low):
        return f"{_fmt(m, stats['mean'])} [{_fmt(m, e.low)}, {_fmt(m, e.high)}]"
    if stats["n"] > 1:
        return f"{stats['mean']:.3f} ± {stats['std']:.3f}"
    return f"{stats['mean']:.3f}"


def _versus_cell(r: Row, m: str) -> str:
    d = r.versus.get(m)
    if d is None:
        return "-"
    interval = f" [{_fmt(m, d.low, '+')}, {_fmt(m, d.high, '+')}]" if math.isfinite(d.low) else ""
    return f"{_fmt(m, d.mean, '+')}{interval} {d.verdict}".rstrip()


def _num(v: float) -> str:
    return f"{v:.6g}" if math.isfinite(v) else ""


def to_csv(table: list[Row], metrics: list[str]) -> str:
    """One line per trial: per metric its mean, sample std over seeds and 95% interval, and
    against a reference its paired difference, interval, Holm-corrected p and verdict."""
    buf = io.StringIO()
    w = csv.writer(buf)
    versus = any(r.versus for r in table)
    head = ["trial", "state", "variant", "params", "n_seeds"]
    for m in metrics:
        head += [f"{m}.mean", f"{m}.std", f"{m}.low", f"{m}.high"]
        if versus:
            head += [f"{m}.diff", f"{m}.diff_low", f"{m}.diff_high", f"{m}.p_holm", f"{m}.verdict"]
    w.writerow(head)
    for r in table:
        n = max((s["n"] for s in r.stats.values()), default=0)
        line = [r.number, r.state, r.variant, json.dumps(r.params, sort_keys=True), int(n)]
        for m in metrics:
            s, e, d = r.stats.get(m), r.intervals.get(m), r.versus.get(m)
            line += [f"{s['mean']:.6g}", f"{s['std']:.6g}"] if s else ["", ""]
            line += [_num(e.low), _num(e.high)] if e else ["", ""]
            if versus:
                line += (
                    [_num(d.mean), _num(d.low), _num(d.high), _num(d.p), d.verdict]
                    if d
                    else [""] * 5
                )
        w.writerow(line)
    return buf.getvalue()


def to_markdown(table: list[Row], metrics: list[str], found: Confidence | None = None) -> str:
    """The table with mean [95% interval] cells, how the intervals were made, and against a
    reference a second table of paired differences with their verdicts."""
    head = ["trial", "variant", "params", "n", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        n = max((s["n"] for s in r.stats.values()), default=0)
        state = "" if r.state == "COMPLETE" else f" ({r.state.lower()})"
        cells = [f"{r.number}{state}", r.variant, r.label() or "-", str(int(n))]
        cells += [_cell(r, m) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    out = "\n".join(lines) + "\n"
    if found is not None:
        out += f"\n{found.note()}.\n"
    reference = found.reference if found is not None else None
    if reference is not None:
        out += f"\n### Minus {reference.name()} (paired; Holm-corrected)\n\n"
        lines = [
            "| " + " | ".join(["trial", "params", *metrics]) + " |",
            "|" + "---|" * (2 + len(metrics)),
        ]
        for r in table:
            if r.versus:
                cells = [str(r.number), r.label() or "-", *(_versus_cell(r, m) for m in metrics)]
                lines.append("| " + " | ".join(cells) + " |")
        out += "\n".join(lines) + "\n"
    return out


# Short headers for the terminal table (the CSV and Markdown keep the full metric names).
SHORT = {
    "eval/roundtrip_fve": "FVE",
    "eval/roundtrip_gap": "gap",
    "eval/prompt_fve": "prompt FVE",
    "eval/beats_prompt": "beats prompt",
    "eval/ar_teacher_fve": "teacher FVE",
    "eval/ar_empty_fve": "empty FVE",
    "eval/quote_rate": "quote",
    "eval/length_mean": "length",
    "eval/tag_failure_rate": "tag fail",
    "eval/schema_violation_rate": "schema fail",
    "eval/faithful_mean": "faithful",
    "eval/contradict_mean": "contradict",
    "trial/wall_s": "wall s",
}


def _fmt(metric: str, value: float, sign: str = "") -> str:
    """`sign`: a prefix ("±"), or "+" for a signed difference."""
    digits = 0 if metric.endswith("wall_s") else 1 if metric.endswith("length_mean") else 3
    if sign == "+":
        return f"{value:+.{digits}f}"
    return f"{sign}{value:.{digits}f}"


def _header(metric: str) -> str:
    return SHORT.get(metric, metric.split("/")[-1])


def _fitting(metrics: list[str], width: int) -> list[str]:
    """The leading metrics whose columns (header or a 6-character number, plus padding) fit
    beside the trial and config columns (about 32 characters); at least two."""
    used, shown = 32, []
    for m in metrics:
        used += max(len(_header(m)), 6) + 2
        if used > width and len(shown) >= 2:
            break
        shown.append(m)
    return shown


def rich_table(table: list[Row], metrics: list[str], title: str, width: int | None = None):
    """Narrow enough for an 80-column terminal: numbers never wrap, the configuration column
    folds (one parameter per line; a preset's name alone), the variant column only when
    variants differ and no preset already names them."""
    from rich import box
    from rich.table import Table

    shown = metrics if width is None else _fitting(metrics, width)
    presets_only = all(len(r.params) == 1 for r in table)
    show_variant = len({r.variant for r in table}) > 1 and not presets_only
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    t.add_column("trial", no_wrap=True)
    if show_variant:
        t.add_column("av/ar", overflow="fold")
    t.add_column("config", overflow="fold")
    for m in shown:
        t.add_column(_header(m), justify="right", no_wrap=True)
    for r in table:
        cells = [str(r.number) + ("" if r.state == "COMPLETE" else f"\n{r.state.lower()}")]
        if show_variant:
            cells.append(r.variant.replace("/", "/\n"))
        if presets_only:
            cells.append(_short(next(iter(r.params.values()))))
        else:
            cells.append("\n".join(f"{k.split('.')[-1]}={_short(v)}" for k, v in r.params.items()))
        for m in shown:
            st, e = r.stats.get(m), r.intervals.get(m)
            if st is None:
                cells.append("-")
            elif e is not None and math.isfinite(e.low):
                cells.append(f"{_fmt(m, st['mean'])}\n[{_fmt(m, e.low)},\n{_fmt(m, e.high)}]")
            elif st["n"] > 1:
                cells.append(f"{_fmt(m, st['mean'])}\n{_fmt(m, st['std'], '±')}")
            else:
                cells.append(_fmt(m, st["mean"]))
        t.add_row(*cells)
    n = max((s["n"] for r in table for s in r.stats.values()), default=0)
    with_interval = any(math.isfinite(e.low) for r in table for e in r.intervals.values())
    notes = [f"mean ± sample std over {int(n)} seeds"] if n > 1 and not with_interval else []
    notes += ["mean [95% interval]"] if with_interval else []
    if len(shown) < len(metrics):
        notes.append(f"{len(metrics) - len(shown)} more columns in comparison.md (wider terminal)")
    t.caption = "; ".join(notes) or None
    if len({r.variant for r in table}) == 1 and table:
        t.title = f"{title} (av/ar: {table[0].variant})"
    return t


def versus_table(table: list[Row], metrics: list[str], reference: Row, width: int | None = None):
    """Each preset minus the reference: paired difference [95% interval] and verdict."""
    from rich import box
    from rich.table import Table

    shown = metrics if width is None else _fitting(metrics, width)
    t = Table(
        title=f"minus {reference.name()} (paired; verdicts Holm-corrected)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    t.add_column("trial", no_wrap=True)
    t.add_column("config", overflow="fold")
    for m in shown:
        t.add_column(_header(m), justify="right", no_wrap=True)
    for r in table:
        if not r.versus:
            continue
        cells = [str(r.number), r.name()]
        for m in shown:
            d = r.versus.get(m)
            if d is None:
                cells.append("-")
                continue
            interval = (
                f"\n[{_fmt(m, d.low, '+')},\n{_fmt(m, d.high, '+')}]"
                if math.isfinite(d.low)
                else ""
            )
            cells.append(f"{_fmt(m, d.mean, '+')}{interval}\n{d.verdict}".rstrip())
        t.add_row(*cells)
    return t


def plots(
    study: optuna.Study,
    table: list[Row],
    out: Path,
    metrics: list[str] = (),
    note: str | None = None,
) -> list[Path]:
    """Optimisation history, parameter importances, Pareto front (several objectives); with the
    table's intervals (`note` says what they are over), one figure per eval metric (each
    preset's estimate beside its controls) and round trip against contradictions. A plot the
    study cannot support yet (e.g. importances need two finished trials with varying
    parameters) is skipped with a log line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ov

    out.mkdir(parents=True, exist_ok=True)
    objectives = study.user_attrs.get("objectives") or [{"metric": "eval/roundtrip_fve"}]
    names = [o["metric"] for o in objectives]
    written: list[Path] = []

    def save(name: str, draw) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = draw()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.tight_layout()
            path = out / f"{name}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError, IndexError) as e:
            log.info("plot %s skipped: %s", name, e)
            plt.close("all")

    if len(names) == 1:
        save(
            "optimization_history",
            lambda: ov.plot_optimization_history(study, target_name=names[0]),
        )
        save("param_importances", lambda: ov.plot_param_importances(study))
    else:
        for i, n in enumerate(names):
            save(
                f"optimization_history_{i}",
                lambda i=i, n=n: ov.plot_optimization_history(
                    study, target=lambda t: t.values[i], target_name=n
                ),
            )
            save(
                f"param_importances_{i}",
                lambda i=i, n=n: ov.plot_param_importances(
                    study, target=lambda t: t.values[i], target_name=n
                ),
            )
        if len(names) in (2, 3):
            save("pareto_front", lambda: ov.plot_pareto_front(study, target_names=names))
    if note is not None:
        for m in [m for m in metrics if m.startswith("eval/")]:
            save(
                f"estimate_{m.removeprefix('eval/')}", lambda m=m: _estimate_figure(table, m, note)
            )
        x, y = "eval/roundtrip_fve", "eval/contradict_mean"
        save("pareto_roundtrip_contradictions", lambda: _pareto_figure(table, x, y, note))
    return written


CONTROLS = {  # metric -> (label, control metric) drawn beside it
    "eval/roundtrip_fve": (
        ("shuffled vectors", "eval/roundtrip_shuffled_fve"),
        ("text-only prompt", "eval/prompt_fve"),
        ("teacher's text", "eval/ar_teacher_fve"),
    ),
}
PROPERTY_CONTROLS = (
    ("other rows' text (chance)", "_shuffled"),
    ("text-only explanation", "_text_only"),
    ("teacher", "_teacher"),
    ("linear probe", "_probe"),
)


def controls(metric: str) -> tuple[tuple[str, str], ...]:
    """The controls a metric's figure shows beside each preset's estimate."""
    if metric in CONTROLS:
        return CONTROLS[metric]
    if re.fullmatch(r"eval/(faithful|contradict)_(?!mean$)\w+", metric):
        return tuple((label, metric + suffix) for label, suffix in PROPERTY_CONTROLS)
    return ()


def control_metrics(metrics: list[str]) -> list[str]:
    return [c for m in metrics for _, c in controls(m) if c not in metrics]


def _title(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _errorbar(ax, y: float, e: C.Estimate | None, **style) -> bool:
    if e is None or not math.isfinite(e.mean):
        return False
    half = e.half_width()
    xerr = [[half], [half]] if math.isfinite(half) else None
    ax.errorbar([e.mean], [y], xerr=xerr, capsize=3, linestyle="none", **style)
    return True


def _estimate_figure(table: list[Row], metric: str, note: str):
    """Each preset's estimate with its 95% interval, best first from the top, and the metric's
    controls beside it (nla_variants/sweeps/report.py CONTROLS)."""
    import matplotlib.pyplot as plt

    shown = [r for r in table if metric in r.intervals]
    if not shown:
        raise ValueError(f"no trial has {metric}")
    beside = [(label, c) for label, c in controls(metric) if any(c in r.intervals for r in shown)]
    fig, ax = plt.subplots(figsize=(7.0, 1.6 + 0.45 * len(shown) * (1 + 0.35 * len(beside))))
    colours = plt.get_cmap("tab10")
    used: set[str] = set()
    step = 1.0 / (len(beside) + 1)
    for k, r in enumerate(shown):
        y = -k
        _errorbar(ax, y, r.intervals[metric], color="black", marker="o", label=None)
        for n, (label, c) in enumerate(beside, start=1):
            drawn = _errorbar(
                ax,
                y - n * step * 0.8,
                r.intervals.get(c),
                color=colours(n),
                marker="s",
                markerfacecolor="none",
                label=None if label in used else label,
            )
            used |= {label} if drawn else set()
    ax.set_yticks([-k for k in range(len(shown))], [r.name() for r in shown])
    if (
        not higher_is_better(metric)
        or metric.endswith(("_gap", "beats_prompt"))
        or any(r.intervals[metric].low < 0 for r in shown)
    ):
        ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel(
        metric + ("  (higher is better)" if higher_is_better(metric) else "  (lower is better)")
    )
    ax.plot([], [], "ko", label="estimate (95% interval)")
    ax.legend(fontsize=7, loc="best")
    ax.figure.suptitle(
        _title(f"{metric} by preset, with controls; {note}", 70), fontsize=9
    )  # over the figure: long labels shift the axes
    return ax


def _pareto_figure(table: list[Row], x: str, y: str, note: str):
    """Round trip (up is better) against contradictions (down is better), with intervals; the
    presets no other beats on both are ringed."""
    import matplotlib.pyplot as plt

    shown = [r for r in table if x in r.intervals and y in r.intervals]
    if len(shown) < 2:
        raise ValueError(f"fewer than two trials have both {x} and {y}")
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    points = [(r, r.intervals[x], r.intervals[y]) for r in shown]
    xs = [o.mean for _, o, _ in points]
    for r, ex, ey in points:
        hx, hy = ex.half_width(), ey.half_width()
        ax.errorbar(
            ex.mean,
            ey.mean,
            xerr=hx if math.isfinite(hx) else None,
            yerr=hy if math.isfinite(hy) else None,
            marker="o",
            capsize=3,
            color="tab:blue",
        )
        dominated = any(
            o.mean >= ex.mean and p.mean <= ey.mean and (o.mean, p.mean) != (ex.mean, ey.mean)
            for _, o, p in points
        )
        if not dominated:
            ax.scatter([ex.mean], [ey.mean], s=160, facecolors="none", edgecolors="tab:red")
        right = ex.mean > (min(xs) + max(xs)) / 2  # labels point inwards, inside the figure
        ax.annotate(
            r.name(),
            (ex.mean, ey.mean),
            textcoords="offset points",
            xytext=(-5 if right else 5, 5),
            ha="right" if right else "left",
            fontsize=7,
        )
    ax.set_xlabel(f"{x} (higher is better)")
    ax.set_ylabel(f"{y} (lower is better)")
    ax.figure.suptitle(
        _title(f"Round trip against contradictions; ringed: on the front. {note}", 70), fontsize=9
    )
    return ax


def compare(
    study: optuna.Study,
    out_dir: Path,
    parent_run_id: str | None = None,
    reference: str | None = None,
) -> tuple[list[Row], list[str], dict[str, Path], Confidence]:
    """Build the table (with intervals, and paired verdicts against `reference`), write
    CSV/Markdown/plots under out_dir, log them to the parent run."""
    table = rows(study)
    metrics = metric_names(study)
    found = add_confidence(table, metrics, reference, extra=control_metrics(metrics))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": out_dir / "comparison.csv",
        "markdown": out_dir / "comparison.md",
    }
    write_text_atomic(files["csv"], to_csv(table, metrics))
    write_text_atomic(files["markdown"], to_markdown(table, metrics, found))
    for p in plots(study, table, out_dir / "plots", metrics, found.note()):
        files[p.stem] = p
    if parent_run_id:
        log_report(parent_run_id, files)
    return table, metrics, files, found


def log_report(parent_run_id: str, files: dict[str, Path]) -> None:
    """Log the report to the sweep's MLflow parent run when that run can be found; else keep
    it in files only and say where it looked. Never creates a tracking store: a sweep directory
    copied elsewhere (or read from another directory) carries a tracking URI that may point
    nowhere, and opening a local one would leave an empty store behind."""
    import mlflow

    from nla_variants.common.masking import mask
    from nla_variants.common.tracking import tracking_store_exists

    uri = mlflow.get_tracking_uri()
    found = tracking_store_exists(uri)
    client = mlflow.MlflowClient(uri) if found else None
    if client is not None:
        try:
            client.get_run(parent_run_id)
        except Exception:  # another store, or a run deleted since
            client = None
    if client is None:
        log.warning(
            "the report is in files only: the sweep's MLflow run %s is not in %s (to log it "
            "there, pass --tracking-uri with the store the sweep logged to)",
            parent_run_id,
            mask(uri) if found else f"{mask(uri)}, which does not exist",
        )
        return
    for path in files.values():
        where = "compare/plots" if path.suffix == ".png" else "compare"
        client.log_artifact(parent_run_id, str(path), where)


def _check_sweep_config(path: Path) -> None:
    """A trial or prepare config passed for a sweep: say so, instead of its first key that a
    sweep config does not have."""
    from nla_variants.common.errors import NLAError
    from nla_variants.config import PrepareConfig, TrialConfig, read_yaml_mapping
    from nla_variants.sweeps.spec import SweepConfig

    keys = set(read_yaml_mapping(path, "sweep config"))
    if "space" in keys:
        return
    sweep_keys = set(SweepConfig.model_fields)
    for what, command, model in (
        ("trial", "train", TrialConfig),
        ("prepare", "prepare", PrepareConfig),
    ):
        if keys & (set(model.model_fields) - sweep_keys):
            raise NLAError(
                f"{path} is a {what} config, not a sweep config",
                "pass a sweep config (a base trial and a space:, e.g. ablations/quickstart.yaml) "
                f"or a sweep directory (.nla/sweeps/NAME); a {what} config runs with nla {command}",
            )


def open_sweep(
    target: str, storage: str | None = None, tracking_uri: str | None = None
) -> tuple[optuna.Study, Path, str | None]:
    """A sweep config file or a sweep directory -> (study, directory, MLflow parent run id).
    `tracking_uri` replaces the one the sweep recorded (a copied sweep directory)."""
    import mlflow
    import yaml

    from nla_variants.checks import check_tracking_uri
    from nla_variants.common.errors import NLAError
    from nla_variants.common.masking import MASK
    from nla_variants.sweeps.runner import STATE_FILE
    from nla_variants.sweeps.spec import load_sweep
    from nla_variants.sweeps.storage import check_url, local_url, open_storage

    path = Path(target)
    if path.is_file():
        _check_sweep_config(path)
    sweep = load_sweep(path) if path.is_file() else None
    config = sweep.cfg if sweep is not None else None
    if config is not None:
        sweep_dir = config.sweep_dir()
    elif path.is_dir():
        sweep_dir = path
    else:
        raise NLAError(f"{target} is neither a sweep config nor a sweep directory", "pass one")
    state_path = sweep_dir / STATE_FILE
    if not state_path.is_file():
        raise NLAError(
            f"{sweep_dir} holds no sweep (no {STATE_FILE})", "run nla sweep CONFIG first"
        )
    state = yaml.safe_load(state_path.read_text())
    if storage:
        url = check_url(storage)
    elif state["local"]:
        url = local_url(sweep_dir)
    elif config is not None and config.storage:
        url = check_url(config.storage)
    else:
        raise NLAError(
            f"sweep {state['name']} lives in a shared database ({state['storage']})",
            "pass the sweep config file or --storage URL",
        )
    try:
        study = optuna.load_study(study_name=state["name"], storage=open_storage(url))
    except KeyError:
        raise NLAError(
            f"no study named {state['name']!r} in {state['storage']}", "check the storage URL"
        ) from None
    if tracking_uri is None:
        tracking_uri = sweep.tracking_uri if sweep is not None else state.get("tracking_uri")
    else:
        check_tracking_uri(tracking_uri, "--tracking-uri")
    if tracking_uri and MASK in tracking_uri:  # the state file never holds a password
        raise NLAError(
            f"sweep {state['name']} logs to an MLflow store with a password ({tracking_uri})",
            "pass the sweep config file instead of its directory",
        )
    if tracking_uri:
        mlflow.set_tracking_uri(os.path.expandvars(tracking_uri))
    return study, sweep_dir, state.get("parent_run_id")
