"""`nla evaluate`: the shared evaluation (`nla_variants.evaluation.evaluation.evaluate`) of a trained NLA on a
dataset's held-out eval split, with the faithfulness table, without training anything.

Why: a run's metrics are fixed when it finishes; a new metric (faithfulness), another sample of
eval rows or another dataset of the same model and layer needs the same evaluation again, from
the NLA as it was saved (a run, a sweep's best run, an export).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nla_variants.checks import check_device
from nla_variants.common.errors import NLAError
from nla_variants.common.schema import DatasetSidecar
from nla_variants.evaluation.row_scores import FILE as ROW_SCORES
from nla_variants.evaluation.row_scores import RowScores

log = logging.getLogger(__name__)


@dataclass
class EvaluateSettings:
    samples: int = 256
    max_new_tokens: int | None = None  # None: the run's eval setting (else 96)
    batch_size: int | None = None  # None: the run's eval setting (else 32)
    seed: int = 0
    precision: str = "auto"
    device: str | None = None


def check_settings(s: EvaluateSettings) -> None:
    if s.samples < 2:
        raise NLAError(f"--samples {s.samples} is below 2", "score at least 2 eval rows")
    for flag, value in (("--max-new-tokens", s.max_new_tokens), ("--batch-size", s.batch_size)):
        if value is not None and value < 1:
            raise NLAError(f"{flag} {value} is below 1", f"pass a positive {flag}")
    check_device(s.device, "--device")  # torch would say so only once weights move there


def _dataset_path(ref, dataset: str | None) -> Path:
    """The dataset to score on: --dataset, or the one the run recorded."""
    from nla_variants.training.runs import read_run_record

    if dataset is not None:
        path = Path(dataset)
    else:
        record = read_run_record(ref.path) if ref.kind == "run" else None
        if not record or not record.dataset:
            raise NLAError(
                f"{ref.path} records no dataset", "pass --dataset DIR (a prepared dataset)"
            )
        path = Path(record.dataset)
    if not (path / DatasetSidecar.FILE).is_file():
        raise NLAError(f"dataset {path} is not a complete dataset", "pass a prepared dataset")
    return path


def check_match(ref, meta: DatasetSidecar, path: Path) -> None:
    fingerprint = meta.model.fingerprint
    if ref.target_fingerprint and fingerprint and fingerprint != ref.target_fingerprint:
        raise NLAError(
            f"dataset {path} holds activations of {meta.model.spec}, not of this NLA's target "
            f"{ref.target}",
            "pass a dataset prepared with the NLA's target model",
        )
    if meta.layer != ref.layer:
        raise NLAError(
            f"dataset {path} is layer {meta.layer}, the NLA reads layer {ref.layer}",
            "pass a dataset of the NLA's layer",
        )
    if (meta.vectors == "diff") != bool(ref.diff_model):
        raise NLAError(
            f"dataset {path} and the NLA disagree on difference vectors (diffing)",
            "pass a dataset of the same kind of vectors the NLA was trained on",
        )


def _eval_setting(ref, key: str, default: int) -> int:
    raw = ref.detail["config"].raw if ref.kind == "run" else {}
    value = (raw.get("eval") or {}).get(key) if isinstance(raw, dict) else None
    return int(value) if isinstance(value, int) else default


def evaluate_nla(
    nla_path: str,
    s: EvaluateSettings,
    dataset: str | None = None,
    target: str | None = None,
) -> tuple[dict[str, Any], RowScores]:
    """Evaluate the NLA at `nla_path` on a dataset's eval split: returns the report (settings,
    metrics, faithfulness table) and the per-row scores. Every input is checked before weights
    load."""
    from nla_variants.artifacts.loading import load, locate
    from nla_variants.core.vectors import mean_direction
    from nla_variants.data.store import StoredDataset
    from nla_variants.evaluation.evaluation import evaluate
    from nla_variants.evaluation.faithfulness import Faithfulness, table_rows
    from nla_variants.explain.explain import autocast_for
    from nla_variants.target import default_device
    from nla_variants.training.data import load_split

    check_settings(s)
    ref = locate(nla_path, target)
    path = _dataset_path(ref, dataset)
    ds = StoredDataset.open(path)
    check_match(ref, ds.meta, path)
    rows = load_split(ds, "eval")
    if len(rows) < 2:
        raise NLAError(f"dataset {path} has {len(rows)} eval rows", "prepare more documents")
    device = torch.device(s.device) if s.device else default_device()
    nla = load(ref, device)
    if nla.ar is None:
        raise NLAError(f"{nla_path} has no AR", "evaluate an NLA with both models")
    log.info("%s NLA %s: %s; dataset %s", ref.kind, ref.path, nla.note or "final weights", path)
    train = torch.from_numpy(ds.training_vectors())
    faithfulness = Faithfulness.from_dataset(ds, s.seed)
    max_new_tokens = s.max_new_tokens or _eval_setting(ref, "max_new_tokens", 96)
    batch_size = s.batch_size or _eval_setting(ref, "batch_size", 32)
    metrics, table, per_row = evaluate(
        nla.av,
        nla.ar,
        rows,
        mean_direction(train),
        max_samples=s.samples,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        table_rows=s.samples,  # every scored row: the report can be read (and re-scored) later
        seed=s.seed,
        autocast=autocast_for(s.precision, device),
        faithfulness=faithfulness,
    )
    settings = {**asdict(s), "max_new_tokens": max_new_tokens, "batch_size": batch_size}
    return {
        "nla": str(nla_path),
        "weights": nla.note or "final weights",
        "dataset": str(path),
        "settings": settings,
        "metrics": metrics,
        "faithfulness": table_rows(metrics),
        "samples": table,
    }, per_row


def write_report(path: Path, report: dict[str, Any], per_row: RowScores) -> Path:
    """The report as JSON at `path`, and its per-row scores beside it (`NAME.eval_rows.parquet`,
    the file a trial writes as eval_rows.parquet); returns the latter's path."""
    from nla_variants.common.io import write_text_atomic

    rows = per_row.write(path.with_name(f"{path.stem}.{ROW_SCORES}"))
    write_text_atomic(path, json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    return rows


HEADLINE = (
    "eval_rows",
    "roundtrip_fve",
    "roundtrip_gap",
    "prompt_fve",
    "beats_prompt",
    "beats_prompt_low",
    "beats_prompt_high",
    "ar_teacher_fve",
    "av_nll_gap",
    "quote_rate",
    "tag_failure_rate",
    "faithful_mean",
    "contradict_mean",
)


def print_report(report: dict[str, Any]) -> None:
    """The headline metrics, then one line per property: probe accuracy, and faithful /
    contradiction shares of the AV, the probe, the teacher, a text-only explanation and other
    rows' explanations (the chance level)."""
    from rich.console import Console
    from rich.table import Table

    m = report["metrics"]
    console = Console()
    head = Table("metric", "value", title=f"nla evaluate {report['nla']} ({report['weights']})")
    for key in HEADLINE:
        if key in m:
            head.add_row(key, f"{m[key]:.4f}")
    console.print(head)
    rows = report["faithfulness"]
    readers = [r for r in ("av", "probe", "teacher", "text_only", "shuffled") if _has(rows, r)]
    t = Table(
        "property",
        "n",
        "probe acc",
        *readers,
        title="faithful / contradict (flags: recall / false alarms)",
    )
    for r in rows:
        cells = [r["property"], _num(r["n"], 0), _num(r["probe_accuracy"])]
        for reader in readers:
            f, c = r[f"{reader}_faithful"], r[f"{reader}_contradict"]
            cells.append("-" if f is None else f"{f:.2f} / {c:.2f}")
        t.add_row(*cells)
    console.print(t)


def _has(rows: list[dict], reader: str) -> bool:
    return any(r[f"{reader}_faithful"] is not None for r in rows)


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
