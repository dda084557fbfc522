"""Does the AV learn to read its vector? A few minutes per lever instead of a whole trial.

Each lever is a set of config overrides. For each, the trial runs its AV warm start only (it is
stopped when the AR's would begin) and the held-out NLL gap (shuffled minus matching vectors, on
ar_sft rows the AV never trains on) is read back from MLflow at every check. Written for the diff
NLA (issue 28): difference vectors are a code the target's blocks have never read, so the
question is which input path lets 50-200 SFT steps learn it. `--through BASE` reads each
difference through the ridge map to the base activation (fit on the av_sft rows of BASE, the
diff dataset's base twin; benchmarks/diff_geometry.py), so the AV gets the target's own code.

    OMP_NUM_THREADS=2 python benchmarks/diff_reading.py configs/train_diff.yaml --steps 50 \
        --lever reference= --lever adapter=av.variant=multitoken,av.k=1,av.mode=learned
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import mlflow
import pyarrow as pa
import torch
from diff_geometry import bridge, split_vectors

from nla_variants.cli import setup_logging
from nla_variants.config import TrialConfig, load_config
from nla_variants.data.store import StoredDataset, vector_matrix
from nla_variants.training.experiment import run_trial


def read_through_base(diff: Path, base: Path, penalty: float = 1.0) -> None:
    """Every read of the diff dataset's vectors returns ridge(difference) -> base activation
    instead (fit on av_sft; the AV never trains on ar_sft, its held-out rows)."""
    to_base = bridge(
        split_vectors(StoredDataset.open(diff), "av_sft"),
        split_vectors(StoredDataset.open(base), "av_sft"),
        penalty,
    )
    table = StoredDataset.table

    def translated(self, split=None, columns=None) -> pa.Table:
        out = table(self, split, columns)
        if self.path.resolve() != diff.resolve() or "vector" not in out.column_names:
            return out
        y = to_base(torch.tensor(vector_matrix(out))).float().numpy()
        col = pa.array(list(y), type=out.schema.field("vector").type)
        return out.set_column(out.column_names.index("vector"), "vector", col)

    StoredDataset.table = translated


class _Stop(Exception):
    """Raised when the AR warm start would begin: the lever's figures are all in."""


def _stop_after_av(stage: str) -> None:
    if stage == "AR warm start":
        raise _Stop


def run_lever(
    config: str, overrides: list[str], steps: int, every: int, out: Path, full: bool = False
) -> dict:
    base = [
        *([] if full else [f"train.av_sft.steps={steps}"]),
        f"train.av_sft.eval_every={every}",
        "train.reuse_warm_start=false",
        f"output_dir={out / 'runs'}",
        f"train.warm_start_cache={out / 'warm'}",
        f"mlflow.tracking_uri=sqlite:///{out / 'mlflow.db'}",
        "mlflow.experiment=diff-reading",
    ]
    cfg = load_config(config, TrialConfig, base + overrides)
    start = time.perf_counter()
    with contextlib.suppress(_Stop):
        run_trial(cfg, progress=False, on_stage=None if full else _stop_after_av)
    wall = time.perf_counter() - start
    client = mlflow.MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("diff-reading")
    run = client.search_runs([exp.experiment_id], order_by=["start_time DESC"], max_results=1)[0]
    keys = [k for k in run.data.metrics if k.endswith("nll_gap") and "best" not in k]
    history = sorted(client.get_metric_history(run.info.run_id, keys[0]), key=lambda m: m.step)
    gaps = [(m.step, m.value) for m in history]
    return {"gaps": gaps, "wall_s": wall, "run": out / "runs" / run.info.run_id}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument(
        "--lever",
        action="append",
        required=True,
        help="NAME=key=value,key=value (config overrides; NAME= for none)",
    )
    parser.add_argument(
        "--full", action="store_true", help="run the whole trial (its run dir is printed)"
    )
    parser.add_argument("--out", type=Path, default=None, help="scratch dir (default: a temp)")
    parser.add_argument(
        "--through",
        nargs=2,
        type=Path,
        metavar=("DIFF", "BASE"),
        help="read the diff dataset DIFF through the ridge map to its base twin BASE",
    )
    args = parser.parse_args()
    setup_logging(quiet=True, trains=True)
    out = args.out or Path(tempfile.mkdtemp(prefix="diff-reading-"))
    if args.through:
        read_through_base(*args.through)
    print("| lever | held-out NLL gap by step | AV wall (s) |\n|---|---|---|")
    for lever in args.lever:
        name, _, rest = lever.partition("=")
        overrides = [o for o in rest.split(",") if o]
        result = run_lever(args.config, overrides, args.steps, args.every, out, args.full)
        gaps = ", ".join(f"{s}: {v:.4f}" for s, v in result["gaps"])
        print(f"| {name} | {gaps} | {result['wall_s']:.0f} |", flush=True)
        if args.full:
            print(f"  {name}: run {result['run']}", flush=True)


if __name__ == "__main__":
    main()
