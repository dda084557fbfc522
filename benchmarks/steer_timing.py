"""How long one `nla steer` takes: a 128-token text, one position, the whole command.

Each repeat runs `nla steer` as a researcher would (a fresh process: imports, the target, the
NLA's weights, the AV's explanation, the AR's reading, two continuations) and reports its wall
time beside the command's own split (explain + reconstruct, continue). The text is the first
128 tokens of an eval document of the run's dataset; the edit replaces the AV's explanation with
a fixed one, so every repeat does the same work.

    python benchmarks/steer_timing.py RUN_DIR [--repeats 3] [--tokens 128] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nla_variants.artifacts.loading import locate
from nla_variants.data.store import StoredDataset
from nla_variants.target import TargetModel
from nla_variants.training.data import load_split
from nla_variants.training.runs import read_run_record

EXPLANATION = "Python source code\nInside an open string literal; it must be closed with a quote"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"))
    args = ap.parse_args()
    ds = StoredDataset.open(read_run_record(args.run).dataset)
    target = TargetModel(locate(args.run).target)
    prefixes = load_split(ds, "eval").prefixes
    text = next(d for d in prefixes if len(target.tokenize([d])[0]) >= args.tokens)
    ids = target.tokenize([text])[0][: args.tokens]
    text = target.tokenizer.decode(ids)
    del target
    nla = str(Path(sys.executable).with_name("nla"))
    walls, splits = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "steer.json"
        for _ in range(args.repeats):
            begin = time.perf_counter()
            subprocess.run(
                [nla, "steer", args.run, "--text", text, "--position", str(args.tokens // 2)]
                + [
                    "--explanation",
                    EXPLANATION,
                    "--precision",
                    args.precision,
                    "--out",
                    str(out),
                    "-q",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                env=os.environ,
            )
            walls.append(time.perf_counter() - begin)
            splits.append(json.loads(out.read_text())["seconds"])
            print(f"wall {walls[-1]:.2f} s, inside: {splits[-1]}", flush=True)
    print(
        f"median over {args.repeats}: wall {statistics.median(walls):.2f} s, explain + "
        f"reconstruct {statistics.median(s['explain'] for s in splits):.2f} s, continue "
        f"{statistics.median(s['continue'] for s in splits):.2f} s "
        f"({len(ids)}-token text, --precision {args.precision}, "
        f"threads {os.environ.get('OMP_NUM_THREADS', 'default')})"
    )


if __name__ == "__main__":
    main()
