"""AV generation throughput under bf16 autocast (fp32 weights), plain fp32 and bf16 weights, at
batch 1 (nla steer, nla explain on one text), 8 (an RL step's rollouts) and 64 (evaluation).

    python benchmarks/generation_precision.py RUN_DIR

Greedy, 48 new tokens per row, the run's first eval vectors; one process, each setting after a
short warm-up.
"""

import argparse
import contextlib
import time

import numpy as np
import torch

from nla_variants.artifacts.loading import load, locate
from nla_variants.data.store import StoredDataset
from nla_variants.evaluation.rollouts import generate_all
from nla_variants.training.runs import read_run_record


def auto() -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    run = ap.parse_args().run
    nla = load(locate(run), torch.device("cpu"))
    ds = StoredDataset.open(read_run_record(run).dataset)
    vecs = torch.from_numpy(np.array(ds.vectors("eval")[:64])).float()

    for b in (1, 8, 64):
        v = vecs[:b]
        settings = (
            ("bf16 autocast", auto, torch.float32),
            ("fp32", contextlib.nullcontext, torch.float32),
            ("bf16 weights", contextlib.nullcontext, torch.bfloat16),
        )
        for label, ctx, dtype in settings:
            nla.av.to(dtype)
            generate_all(nla.av, v[:1], 1, 4, None, ctx())  # warm
            t = time.perf_counter()
            _, ids = generate_all(nla.av, v, b, 48, None, ctx())
            dt = time.perf_counter() - t
            n = sum(len(x) for x in ids)
            print(
                f"batch {b:3d} | {label:14s} | {dt:6.2f} s | {n} tokens | {n / dt:7.1f} tok/s",
                flush=True,
            )
        nla.av.to(torch.float32)


if __name__ == "__main__":
    main()
