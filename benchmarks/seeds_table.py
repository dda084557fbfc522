"""The recipe's figures on several seeds, as issue 23's done-when lists them: one row per finished
run (the final evaluation on its spread eval rows) and RL's share (its evaluations at RL step 0,
the warm start, and at the last step, on the same rows), then the mean and the spread.

    python benchmarks/seeds_table.py .nla/runs/RUN_A .nla/runs/RUN_B ...

Reads each run's `nla_run.yaml` (the final metrics) and its MLflow history (`rl/eval/*`), with
the tracking URI its config.yaml names (the MLflow default when it names none).
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import mlflow
import yaml

FINAL = (
    ("eval/roundtrip_fve", "round trip"),
    ("eval/prompt_fve", "prompt"),
    ("eval/beats_prompt", "beats prompt"),
    ("eval/roundtrip_gap", "gap"),
    ("eval/av_nll_gap", "NLL gap"),
    ("eval/faithful_genre", "genre right"),
    ("eval/contradict_genre", "genre wrong"),
    ("eval/tag_failure_rate", "tag fail"),
)
RL = ("roundtrip_fve", "prompt_fve", "beats_prompt")


def rl_share(run_dir: Path, cfg: dict) -> dict[str, tuple[float, float]]:
    """(first, last) of each `rl/eval/*` metric in RL's evaluations of the run."""
    uri = os.path.expandvars((cfg.get("mlflow") or {}).get("tracking_uri") or "")
    client = mlflow.MlflowClient(uri or None)
    out = {}
    for name in RL:
        history = sorted(client.get_metric_history(run_dir.name, f"rl/eval/{name}"),
                         key=lambda m: m.step)  # fmt: skip
        if history:
            out[name] = (history[0].value, history[-1].value)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    args = ap.parse_args()
    header = ["seed", *(label for _, label in FINAL), "wall min", "RL: round trip / beats prompt"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    columns: dict[str, list[float]] = {key: [] for key, _ in FINAL}
    for run in args.runs:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        record = yaml.safe_load((run / "nla_run.yaml").read_text())
        m = record["metrics"]
        if record.get("stage") != "finished":
            raise SystemExit(f"{run}: stage {record.get('stage')!r}, not finished")
        cells = [str(cfg.get("seed", 0))]
        for key, _ in FINAL:
            columns[key].append(m[key])
            cells.append(f"{m[key]:.3f}")
        lo, hi = m["eval/beats_prompt_low"], m["eval/beats_prompt_high"]
        cells[FINAL.index(("eval/beats_prompt", "beats prompt")) + 1] += f" [{lo:+.3f}, {hi:+.3f}]"
        cells.append(f"{m.get('trial/wall_s', float('nan')) / 60:.1f}")
        share = rl_share(run, cfg)
        if share:
            rt, bp = share.get("roundtrip_fve"), share.get("beats_prompt")
            cells.append(f"{rt[0]:.3f} -> {rt[1]:.3f} / {bp[0]:+.3f} -> {bp[1]:+.3f}")
        else:
            cells.append("not logged")
        print("| " + " | ".join(cells) + " |")
    if len(args.runs) > 1:
        cells = ["mean (sd)"]
        for key, _ in FINAL:
            cells.append(
                f"{statistics.mean(columns[key]):.3f} ({statistics.stdev(columns[key]):.3f})"
            )
        print("| " + " | ".join(cells) + " | | |")


if __name__ == "__main__":
    main()
