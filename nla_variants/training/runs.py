"""A trial's run record: which checkpoints it finished and which dataset it read.

`run_trial` keeps finished warm starts in the content-addressed cache, not in the run directory,
so a run directory alone does not say where its models are. The record (`RUN_DIR/nla_run.yaml`,
written atomically after the warm starts and again at the end of the trial) does, so that
`nla explain RUN_DIR` and `nla export RUN_DIR` can find the models without MLflow.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nla_variants.common.io import write_yaml_atomic
from nla_variants.common.schema import RunRecord

RECORD = RunRecord.FILE


def write_run_record(
    run_dir: Path,
    checkpoints: dict[str, Path],
    dataset: Path,
    metrics: dict[str, Any] | None = None,
) -> None:
    """Record the run's finished checkpoints (absolute paths), its dataset and, at the end of
    the trial, its final metrics (finite numbers only)."""
    record: dict[str, Any] = {
        "run_id": run_dir.name,
        "stage": "finished" if metrics is not None else "warm_start",
        "dataset": str(Path(dataset).resolve()),
        "checkpoints": {k: str(Path(v).resolve()) for k, v in sorted(checkpoints.items())},
    }
    if metrics is not None:
        record["metrics"] = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, int | float) and math.isfinite(float(v))
        }
    RunRecord.parse(record, Path(run_dir) / RECORD)  # nothing a reader would refuse
    write_yaml_atomic(Path(run_dir) / RECORD, record)


def read_run_record(run_dir: Path) -> RunRecord | None:
    """The run's record, or None for a run written before records existed (or still in its
    warm start)."""
    return RunRecord.read(run_dir) if (Path(run_dir) / RECORD).is_file() else None
