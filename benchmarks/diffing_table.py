"""Activation diffing's result (issue 28, item 3): how often an NLA's explanations name the genre
the second model was tuned on, on narrative rows and on the others, beside its controls.

    python benchmarks/diffing_table.py DIFF_RUN BASE_EVAL_ROWS.parquet

DIFF_RUN: a finished `nla train configs/train_diff.yaml` run (its eval_rows.parquet and the
final metrics in nla_run.yaml: the faithfulness of `tuned_genre` and `genre`, with the shuffled
control and the probe). BASE_EVAL_ROWS: the per-row file `nla evaluate BASE_NLA --dataset
BASE_DATASET --out X.json` wrote beside X.json, for an NLA of base activations reading the same
documents' base activations. Each explanation's stated genre is read by the faithfulness reader.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import yaml

from nla_variants.auditing.reveal import wilson
from nla_variants.evaluation.faithfulness import stated

TUNED = "narrative"


def naming(rows: pd.DataFrame) -> dict[str, str]:
    """The share of explanations that state the tuned genre, on its rows and on the others."""
    said = rows["explanation"].map(lambda e: isinstance(e, str) and stated("genre", e) == TUNED)
    tuned = rows["genre"] == TUNED
    out = {}
    for label, mask in (("narrative rows", tuned), ("other rows", ~tuned), ("all rows", None)):
        part = said if mask is None else said[mask]
        hits, n = int(part.sum()), len(part)
        low, high = wilson(hits, n) if n else (math.nan, math.nan)
        out[label] = f"{hits / n:.3f} [{low:.3f}, {high:.3f}] (n {n})" if n else "n/a"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("diff_run", type=Path)
    ap.add_argument("base_rows", type=Path)
    args = ap.parse_args()
    diff = pd.read_parquet(args.diff_run / "eval_rows.parquet")
    base = pd.read_parquet(args.base_rows)
    same = set(diff["example_id"]) == set(base["example_id"])
    print(f"same eval rows in both: {same} ({len(diff)} diff rows, {len(base)} base rows)\n")
    print("| NLA | states 'narrative' on narrative rows | on other rows | on all rows |")
    print("|---|---|---|---|")
    for name, rows in (
        ("diff NLA, difference vectors", diff),
        ("base NLA, base activations", base),
    ):
        cells = naming(rows)
        print(
            f"| {name} | {cells['narrative rows']} | {cells['other rows']} | {cells['all rows']} |"
        )
    metrics = yaml.safe_load((args.diff_run / "nla_run.yaml").read_text())["metrics"]
    print("\nthe diff run's own evaluation (faithfulness; `_shuffled`: other rows' explanations):")
    for key in (
        "eval/faithful_tuned_genre",
        "eval/contradict_tuned_genre",
        "eval/faithful_tuned_genre_shuffled",
        "eval/faithful_genre",
        "eval/contradict_genre",
        "eval/faithful_genre_shuffled",
        "eval/faithful_genre_teacher",
        "eval/probe_genre",
        "eval/roundtrip_fve",
        "eval/roundtrip_gap",
        "eval/av_nll_gap",
    ):
        if key in metrics:
            print(f"  {key}: {metrics[key]:.3f}")


if __name__ == "__main__":
    main()
