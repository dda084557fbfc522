"""Draw a finished run's learning curves (the picture every trial logs to MLflow as
`curves/learning_curve.png`) to a file, e.g. into benchmarks/.

    python benchmarks/learning_curve.py .nla/runs/RUN_ID benchmarks/learning_curve.png

The run's tracking URI comes from its config.yaml (the MLflow default when it names none).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import mlflow
import yaml

from nla_variants.training.curves import plot_curves, read_curves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    cfg = yaml.safe_load((args.run_dir / "config.yaml").read_text())
    uri = os.path.expandvars((cfg.get("mlflow") or {}).get("tracking_uri") or "")
    curves = read_curves(mlflow.MlflowClient(uri or None), args.run_dir.name)
    fig = plot_curves(curves, f"{cfg.get('name', 'run')}, seed {cfg.get('seed', 0)}")
    if fig is None:
        raise SystemExit(f"run {args.run_dir.name} logged no curve metrics (RL eval_every: 0?)")
    fig.savefig(args.out, dpi=120)
    cross = curves.crossing()
    said = f"beats the prompt from minute {cross:.0f}" if cross is not None else "never beats it"
    print(f"wrote {args.out}: the round trip {said}")


if __name__ == "__main__":
    main()
