"""Evaluate saved AV and AR checkpoints on a dataset's eval split with the shared evaluation
(e.g. the warm-start checkpoints of a trial that went on to RL).

    python benchmarks/evaluate_checkpoints.py RUN_DIR [--samples 256]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nla_variants.config import TrialConfig, load_config
from nla_variants.core.vectors import mean_direction
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation.evaluation import evaluate
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import load_component, read_sidecar
from nla_variants.training.data import load_split
from nla_variants.variants.registry import BuildContext


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--samples", type=int, default=256)
    args = ap.parse_args()
    cfg = load_config(args.run_dir / "config.yaml", TrialConfig)
    ds = StoredDataset.open(prepare(cfg.data, progress=False).path)
    meta = read_sidecar(args.run_dir / "ar_checkpoint")
    ctx = BuildContext(
        resolve_model(cfg.data.target.model), meta.layer, meta.d_model, meta.data_norm
    )
    av, _ = load_component(args.run_dir / "av_checkpoint", ctx)
    ar, _ = load_component(args.run_dir / "ar_checkpoint", ctx)
    mean = mean_direction(torch.from_numpy(ds.training_vectors()))
    scores, table, _ = evaluate(
        av.eval(),
        ar.eval(),
        load_split(ds, "eval"),
        mean,
        max_samples=args.samples,
        max_new_tokens=cfg.eval.max_new_tokens,
        batch_size=cfg.eval.batch_size,
        seed=cfg.seed,
        autocast=torch.autocast("cpu", dtype=torch.bfloat16),
    )
    for k, v in scores.items():
        print(f"{k}: {v:.4f}")
    for row in table[:4]:
        print(
            "---",
            row["prefix_end"][-80:].replace("\n", " "),
            "\nteacher:",
            row["teacher_explanation"].replace("\n", " | "),
            "\nav:",
            row["av_explanation"].replace("\n", " | "),
        )


if __name__ == "__main__":
    main()
