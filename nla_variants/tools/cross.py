"""Private codes, measured (`nla compare --cross`): every preset's AV explanations read by every
preset's AR, and by its own AR after meaning-preserving rewrites.

Why: an AV trained against its own AR can drift into text that AR inverts but no other reader
would: a private code, the research notes' worry about a "too smart" AR. Two measurements make it
visible from a finished study, without training anything:

- the cross-reconstruction matrix: AV i's explanations (the ones its evaluation wrote, in the
  per-row file) read by AR j of the same seed, on the same eval rows. The diagonal is the round
  trip. `own - others` is how much better AV i's own AR reads it than the other ARs do, on
  average: large where the text is a code only its partner shares. `own - best other` compares
  with the one other AR that reads it best (picked on the same rows, so it leans low);
- the perturbation battery (nla_variants/evaluation/perturbations.py): AV i's explanations rewritten with
  their meaning kept, read by AR i again; the FVE lost is how much rode on form.

Every figure is a mean over the study's seeds with a 95% interval over rows and seeds (the same
estimator as the table's, nla_variants/sweeps/confidence.py). A failed (unclosed) explanation
scores the orthogonal MSE for every reader, as in the evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nla_variants.common.errors import NLAError
from nla_variants.evaluation.perturbations import PERTURBATIONS
from nla_variants.evaluation.row_scores import read_row_scores
from nla_variants.sweeps import confidence as C

log = logging.getLogger(__name__)
ORTHOGONAL_MSE = 2.0
FVE = C.MetricSpec(1.0, C.fve("mse"))


@dataclass
class Reading:
    """One preset's eval explanations at one seed, and the run that wrote them."""

    name: str
    seed: str
    run_dir: Path
    ids: list[str]
    texts: list[str | None]
    base_mse: np.ndarray


@dataclass
class CrossResult:
    presets: list[str]  # in table order
    seeds: list[str]
    rows: int
    matrix: dict[tuple[str, str], C.Estimate]  # (AV preset, AR preset) -> FVE
    own_minus_others: dict[str, C.Estimate]  # AV preset -> own AR's FVE minus the others' mean
    lost: dict[tuple[str, str], C.Estimate]  # (preset, perturbation) -> FVE lost
    changed: dict[tuple[str, str], float] = field(default_factory=dict)  # share rewritten
    # AV preset -> (the other AR that reads it best, own AR's FVE minus that AR's). The best is
    # picked on the same rows, so the margin leans low: a code private to the pair shows as > 0.
    own_minus_best: dict[str, tuple[str, C.Estimate]] = field(default_factory=dict)


def _readings(table: list) -> list[Reading]:
    found, stale = [], []
    for r in table:
        if r.state != "COMPLETE":
            continue
        for seed, path in sorted(r.seed_rows.items()):
            if seed not in r.seed_metrics or not Path(path).is_file():
                continue
            t = read_row_scores(path).to_pydict()
            if "explanation" not in t:
                stale.append(r.name())
                continue
            base = np.asarray(t["base_mse"], float)
            found.append(
                Reading(r.name(), seed, Path(path).parent, t["example_id"], t["explanation"], base)
            )
    if stale:
        log.warning(
            "left out of --cross (per-row files without explanations): %s",
            ", ".join(sorted(set(stale))),
        )
    if not found:
        raise NLAError(
            "no finished trial of this sweep kept its eval explanations (per-row files written "
            "before --cross existed, or none at all)",
            "rerun the sweep with this version of nla_variants, then nla compare --cross",
        )
    return found


def _aligned(readings: list[Reading]) -> tuple[list[Reading], list[str]]:
    """The readings on the eval rows all of them share, in one order."""
    shared = set.intersection(*(set(r.ids) for r in readings))
    common = [e for e in readings[0].ids if e in shared]
    if len(common) < 2:
        raise NLAError(
            f"the trials' per-row files share {len(common)} eval rows",
            "compare trials that evaluated the same dataset",
        )
    out = []
    for r in readings:
        where = {e: i for i, e in enumerate(r.ids)}
        order = [where[e] for e in common]
        out.append(
            Reading(
                r.name, r.seed, r.run_dir, common, [r.texts[i] for i in order], r.base_mse[order]
            )
        )
    return out, common


def _eval_rows(run_dir: Path, ids: list[str]) -> tuple[torch.Tensor, list[str]]:
    """The eval vectors and source prefixes of `ids`, from the dataset the run trained on."""
    from nla_variants.common.schema import DatasetSidecar, RunRecord
    from nla_variants.data.store import StoredDataset
    from nla_variants.training.data import load_split
    from nla_variants.training.runs import read_run_record

    record = read_run_record(run_dir) or RunRecord()
    path = Path(record.dataset or "")
    if not record.dataset or not (path / DatasetSidecar.FILE).is_file():
        raise NLAError(
            f"the dataset of run {run_dir} is gone ({path})",
            "prepare it again (nla prepare with the sweep's data settings), then rerun --cross",
        )
    rows = load_split(StoredDataset.open(path), "eval")
    where = {e: i for i, e in enumerate(rows.example_ids)}
    missing = [e for e in ids if e not in where]
    if missing:
        raise NLAError(
            f"eval row {missing[0]} is not in dataset {path}", "compare trials of one dataset"
        )
    chosen = rows.take([where[e] for e in ids])
    return torch.tensor(np.asarray(chosen.vectors)), chosen.prefixes


def _mse(ar, texts: list[str | None], prefixes, vectors, batch_size: int, autocast) -> np.ndarray:
    """Per-row normalised MSE of the AR reading `texts` (orthogonal where there is none)."""
    from nla_variants.core.vectors import normalized_mse
    from nla_variants.evaluation.rollouts import ar_predict

    out = np.full(len(texts), ORTHOGONAL_MSE)
    said = [i for i, t in enumerate(texts) if t is not None]
    if said:
        with autocast:
            pred = ar_predict(ar, [texts[i] for i in said], [prefixes[i] for i in said], batch_size)
        out[said] = normalized_mse(pred, vectors[said]).numpy()
    return out


def _arrays(mse: np.ndarray, base: np.ndarray) -> dict[str, np.ndarray]:
    return {"one": np.ones(len(mse)), "mse": mse, "base_mse": base}


def _eval_settings(run_dir: Path) -> tuple[int, str]:
    """The batch size and precision the run's evaluation used, so the diagonal repeats it."""
    from nla_variants.config import read_yaml_mapping

    raw = read_yaml_mapping(run_dir / "config.yaml", "run config")
    batch = (raw.get("eval") or {}).get("batch_size")
    trainer = (raw.get("train") or {}).get("precision", "auto")
    precision = {"32-true": "fp32", "bf16-mixed": "bf16"}.get(trainer, "auto")
    return (int(batch) if isinstance(batch, int) and batch > 0 else 32), precision


def cross_read(table: list, device: str | None = None) -> CrossResult:
    """The cross-reconstruction matrix and the perturbation battery of a study's finished
    trials (see the module docstring). Loads each trial's AR once per seed."""
    from nla_variants.artifacts.loading import load, locate
    from nla_variants.target import autocast_context, default_device, resolve_precision

    readings, ids = _aligned(_readings(table))
    presets = list(dict.fromkeys(r.name for r in readings))
    seeds = sorted({r.seed for r in readings}, key=lambda s: (len(s), s))
    by = {(r.name, r.seed): r for r in readings}
    vectors, prefixes = _eval_rows(readings[0].run_dir, ids)
    dev = torch.device(device) if device else default_device()
    mse: dict[tuple[str, str, str], np.ndarray] = {}  # (AV preset, AR preset, seed)
    perturbed: dict[tuple[str, str, str], np.ndarray] = {}  # (preset, perturbation, seed)
    changed: dict[tuple[str, str], list[float]] = {}
    for (ar_name, seed), reader in by.items():
        log.info("--cross: the AR of %s (seed %s) reads every preset's explanations", ar_name, seed)
        nla = load(locate(reader.run_dir), dev)
        if "not kept" in (nla.note or ""):
            log.warning("%s (seed %s): %s", ar_name, seed, nla.note)
        batch, precision = _eval_settings(reader.run_dir)
        autocast = autocast_context(dev, resolve_precision(precision, dev))
        for av_name in presets:
            if (av_name, seed) in by:
                texts = by[(av_name, seed)].texts
                mse[(av_name, ar_name, seed)] = _mse(
                    nla.ar, texts, prefixes, vectors, batch, autocast
                )
        own = reader.texts
        for p, rewrite in PERTURBATIONS.items():
            texts = [rewrite(t) if t is not None else None for t in own]
            pairs = [(a, b) for a, b in zip(own, texts, strict=True) if a is not None]
            share = sum(a != b for a, b in pairs) / max(len(pairs), 1)
            changed.setdefault((ar_name, p), []).append(share)
            perturbed[(ar_name, p, seed)] = _mse(nla.ar, texts, prefixes, vectors, batch, autocast)
        del nla

    base = {k: r.base_mse for k, r in by.items()}
    matrix, margin, lost, over_best = {}, {}, {}, {}
    for i in presets:
        for j in presets:
            both = [s for s in seeds if (i, j, s) in mse]
            if both:
                arrays = [_arrays(mse[(i, j, s)], base[(i, s)]) for s in both]
                matrix[(i, j)] = C.row_estimate(FVE, arrays)
        own_seeds = [s for s in seeds if (i, i, s) in mse]
        others = [j for j in presets if j != i]
        usable = [s for s in own_seeds if all((i, j, s) in mse for j in others)]
        if others and usable:
            mine = [_arrays(mse[(i, i, s)], base[(i, s)]) for s in usable]
            theirs = [
                _arrays(np.mean([mse[(i, j, s)] for j in others], axis=0), base[(i, s)])
                for s in usable
            ]
            margin[i] = C.row_estimate(FVE, mine, theirs)
            best = max(others, key=lambda j: matrix[(i, j)].mean)
            rival = [_arrays(mse[(i, best, s)], base[(i, s)]) for s in usable]
            over_best[i] = (best, C.row_estimate(FVE, mine, rival))
        for p in PERTURBATIONS:
            have = [s for s in own_seeds if (i, p, s) in perturbed]
            if have:
                original = [_arrays(mse[(i, i, s)], base[(i, s)]) for s in have]
                rewritten = [_arrays(perturbed[(i, p, s)], base[(i, s)]) for s in have]
                lost[(i, p)] = C.row_estimate(FVE, original, rewritten)  # FVE lost
    shares = {k: float(np.mean(v)) for k, v in changed.items()}
    return CrossResult(presets, seeds, len(ids), matrix, margin, lost, shares, over_best)


# -- the report ----------------------------------------------------------------------------------


def _cell(e: C.Estimate | None, sign: str = "", compact: bool = False) -> str:
    """mean [low, high]; `compact`: mean +- half width (the terminal's wide matrix)."""
    if e is None or not np.isfinite(e.mean):
        return "-"
    half = e.half_width()
    if not np.isfinite(half):
        return f"{e.mean:{sign}.3f}"
    if compact:
        return f"{e.mean:{sign}.3f}±{half:.3f}"
    return f"{e.mean:{sign}.3f} [{e.low:{sign}.3f}, {e.high:{sign}.3f}]"


def note(res: CrossResult) -> str:
    seeds = f"{len(res.seeds)} seeds" if len(res.seeds) > 1 else "one seed (no training noise)"
    return f"95% intervals over {res.rows} paired eval rows and {seeds}"


MARGINS = ("own - others", "own - best other")


def _best_cell(res: CrossResult, i: str, compact: bool) -> str:
    if i not in res.own_minus_best:
        return "-"
    best, e = res.own_minus_best[i]
    return f"{_cell(e, '+', compact)} ({best})"


def matrix_rows(res: CrossResult, compact: bool = False) -> list[list[str]]:
    """[AV, each AR's FVE..., own minus others, own minus the best other] per AV preset."""
    return [
        [
            i,
            *(_cell(res.matrix.get((i, j)), compact=compact) for j in res.presets),
            _cell(res.own_minus_others.get(i), "+", compact),
            _best_cell(res, i, compact),
        ]
        for i in res.presets
    ]


def battery_rows(res: CrossResult, compact: bool = False) -> list[list[str]]:
    """[preset, round trip, then per rewrite: FVE lost (share rewritten)]."""
    out = []
    for i in res.presets:
        cells = [i, _cell(res.matrix.get((i, i)), compact=compact)]
        for p in PERTURBATIONS:
            share = res.changed.get((i, p))
            where = f" ({share:.0%} rewritten)" if share is not None else ""
            cells.append(_cell(res.lost.get((i, p)), "+", compact) + where)
        out.append(cells)
    return out


def print_tables(res: CrossResult, console) -> None:
    """Both tables on a rich console."""
    from rich.table import Table

    m = Table("AV \\ AR", *res.presets, *MARGINS, title="cross-reconstruction FVE")
    for r in matrix_rows(res, compact=True):
        m.add_row(*r)
    console.print(m)
    b = Table("preset", "round trip", *PERTURBATIONS, title="FVE lost under rewrites")
    for r in battery_rows(res, compact=True):
        b.add_row(*r)
    console.print(b)
    console.print(f"{note(res)}.")


def to_markdown(res: CrossResult) -> str:
    def table(head: list[str], body: list[list[str]]) -> list[str]:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return lines + ["| " + " | ".join(r) + " |" for r in body]

    out = [
        "## Cross-reconstruction: AV explanations (rows) read by each AR (columns), FVE",
        "",
        f"The diagonal is the round trip; own - others: the AV's own AR minus the other ARs' mean; "
        f"own - best other: minus the other AR that reads it best, named ({note(res)}).",
        "",
        *table(["AV \\ AR", *res.presets, *MARGINS], matrix_rows(res)),
        "",
        "## Perturbation battery: FVE lost when the explanations are rewritten, meaning kept",
        "",
        *table(["preset", "round trip", *PERTURBATIONS], battery_rows(res)),
        "",
    ]
    return "\n".join(out)


def to_csv(res: CrossResult) -> str:
    """One line per (AV, reader): the AR's preset, or `AR:rewrite` for the battery."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["av", "reader", "fve", "low", "high", "fve_lost", "lost_low", "lost_high", "rewritten"]
    )
    for (i, j), e in res.matrix.items():
        w.writerow([i, j, f"{e.mean:.6g}", f"{e.low:.6g}", f"{e.high:.6g}", "", "", "", ""])
    for i, e in res.own_minus_others.items():
        w.writerow(
            [i, "own-minus-others", f"{e.mean:.6g}", f"{e.low:.6g}", f"{e.high:.6g}", *[""] * 4]
        )
    for i, (best, e) in res.own_minus_best.items():
        w.writerow(
            [i, f"own-minus:{best}", f"{e.mean:.6g}", f"{e.low:.6g}", f"{e.high:.6g}", *[""] * 4]
        )
    for (i, p), e in res.lost.items():
        share = res.changed.get((i, p), float("nan"))
        w.writerow(
            [
                i,
                f"{i}:{p}",
                "",
                "",
                "",
                f"{e.mean:.6g}",
                f"{e.low:.6g}",
                f"{e.high:.6g}",
                f"{share:.3f}",
            ]
        )
    return buf.getvalue()


def write_report(res: CrossResult, out_dir: Path, parent_run_id: str | None) -> dict[str, Path]:
    """cross.csv, cross.md and plots/cross_matrix.png under out_dir, logged to the sweep's
    MLflow parent run beside the comparison."""
    from nla_variants.common.io import write_text_atomic
    from nla_variants.sweeps.report import log_report

    files = {"cross_csv": out_dir / "cross.csv", "cross_markdown": out_dir / "cross.md"}
    write_text_atomic(files["cross_csv"], to_csv(res))
    write_text_atomic(files["cross_markdown"], to_markdown(res))
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    files["cross_matrix"] = plot(res, out_dir / "plots" / "cross_matrix.png")
    if parent_run_id:
        log_report(parent_run_id, files)
    return files


def plot(res: CrossResult, path: Path) -> Path:
    """The matrix as a heat map, each cell's mean written in it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(res.presets)
    grid = np.array(
        [
            [res.matrix[(i, j)].mean if (i, j) in res.matrix else np.nan for j in res.presets]
            for i in res.presets
        ]
    )
    fig, ax = plt.subplots(figsize=(2.2 + 1.1 * n, 1.6 + 0.8 * n))
    image = ax.imshow(grid, cmap="viridis")
    ax.set_xticks(range(n), res.presets, rotation=30, ha="right")
    ax.set_yticks(range(n), res.presets)
    ax.set_xlabel("AR (reader)")
    ax.set_ylabel("AV (writer)")
    for a in range(n):
        for b in range(n):
            if np.isfinite(grid[a, b]):
                ax.text(b, a, f"{grid[a, b]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label="FVE")
    ax.set_title("Cross-reconstruction FVE\n(diagonal: round trip)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
