"""Rollout throughput: one batched, KV-cached generate call for all B x G samples (what the RL
step does, with torch's sampler and with a seeded generator per rollout, which RL uses so each
rank of a multi-process step draws what one process would) against one call per sample.

    python benchmarks/rollout.py [--batch 4] [--group 8] [--tokens 64]

Both paths sample the same number of tokens from the embedded AV (bf16 autocast, temperature 1);
an untrained AV never closes its tag, so every row runs to the cap and the work is equal.
"""

from __future__ import annotations

import argparse
import time

import torch

from nla_variants.target import resolve_model
from nla_variants.variants.registry import BuildContext, build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    args = ap.parse_args()
    av = build("av", {}, BuildContext(resolve_model("embedded"), 20, 576, 220.0)).eval()
    vectors = torch.randn(args.batch, 576, generator=torch.Generator().manual_seed(0)) * 200
    n = args.batch * args.group
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)

    def batched() -> int:
        _, toks = av.generate(
            vectors, max_new_tokens=args.tokens, temperature=1.0, num_samples=args.group
        )
        return sum(map(len, toks))

    def seeded() -> int:
        _, toks = av.generate(
            vectors,
            max_new_tokens=args.tokens,
            temperature=1.0,
            num_samples=args.group,
            seeds=list(range(args.batch)),
        )
        return sum(map(len, toks))

    def per_sample() -> int:
        total = 0
        for v in vectors:
            for _ in range(args.group):
                _, toks = av.generate(v[None], max_new_tokens=args.tokens, temperature=1.0)
                total += len(toks[0])
        return total

    with autocast:
        batched()  # warm-up
        rows = []
        for name, fn in (
            ("batched: one KV-cached generate for all B x G", batched),
            ("batched, a seeded generator per rollout (RL's path)", seeded),
            ("per-sample generate calls", per_sample),
        ):
            t = time.perf_counter()
            tokens = fn()
            sec = time.perf_counter() - t
            rows.append((name, tokens, sec))
    print(
        f"B x G = {args.batch} x {args.group} = {n} rollouts, cap {args.tokens} tokens, "
        f"threads {torch.get_num_threads()}"
    )
    print("| path | tokens | seconds | tokens/s |")
    print("|---|---|---|---|")
    for name, tokens, sec in rows:
        print(f"| {name} | {tokens} | {sec:.1f} | {tokens / sec:.0f} |")
    print(f"speed-up: {(rows[0][1] / rows[0][2]) / (rows[2][1] / rows[2][2]):.1f}x")


if __name__ == "__main__":
    main()
