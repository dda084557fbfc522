"""The explanations of two AV checkpoints for the same eval prefixes, side by side, with the second
AV also given another row's vector: a reader sees whether an explanation depends on its vector.

    python benchmarks/compare_explanations.py TRIAL.yaml BEFORE_AV_DIR AFTER_AV_DIR [--rows 8]

TRIAL.yaml names the dataset (its `data` section); the AV dirs are warm-start checkpoints (e.g.
`.nla/warm_starts/av-*`). Prints a Markdown table (greedy decoding, bf16 autocast).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nla_variants.config import TrialConfig, load_config
from nla_variants.core.vectors import derangement
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation.evaluation import explain
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import load_component, read_sidecar
from nla_variants.training.data import load_split
from nla_variants.variants.registry import BuildContext


def _cell(text: str | None) -> str:
    return (text or "(no closed tag)").replace("|", "/").replace("\n", " <br> ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("trial", type=Path)
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rows", type=int, default=8)
    args = ap.parse_args()
    cfg = load_config(args.trial, TrialConfig)
    ds = StoredDataset.open(prepare(cfg.data, progress=False).path)
    meta = read_sidecar(args.after)
    ctx = BuildContext(resolve_model(cfg.data.target.model), meta.layer, meta.d_model)
    rows = load_split(ds, "eval").take(range(args.rows))
    vectors = torch.from_numpy(rows.vectors.copy())
    columns = {}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for label, path, vecs in (
            ("before", args.before, vectors),
            ("after", args.after, vectors),
            ("after, another row's vector", args.after, vectors[derangement(args.rows, 0)]),
        ):
            av, _ = load_component(path, ctx)
            columns[label] = explain(av.eval(), vecs, args.rows, 96)[1]
    print("| prefix (end) | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for i in range(args.rows):
        prefix = rows.prefixes[i][-60:]
        cells = [_cell(columns[label][i]) for label in columns]
        print(f"| `{_cell(prefix)}` | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
