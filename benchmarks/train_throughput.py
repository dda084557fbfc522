"""Warm-start (SFT) training throughput of the baseline AV and AR on the embedded model, as
tokens/s and as a fraction of the machine's bf16 matmul ceiling.

    python benchmarks/train_throughput.py [--batch-av 16] [--batch-ar 32] [--steps 6]

Steady state: the first 2 steps (allocator and kernel warm-up) are not timed. Model FLOPs per
step count 6 x parameters x tokens for the blocks (forward + backward), the LM head only on
response tokens (where the AV computes it), and causal attention; the AdamW step is in the time
but not in the FLOPs, so the fraction is a lower bound on matmul efficiency.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import matmul_ceiling

from nla_variants.config import PrepareConfig, load_config
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.target import resolve_model
from nla_variants.training.data import load_split
from nla_variants.variants.registry import BuildContext, build


def params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def attention_flops(n_blocks: int, d: int, lengths: list[int]) -> float:
    return sum(3 * 2 * 2 * n_blocks * d * n * n / 2 for n in lengths)  # fwd+bwd, causal half


def time_steps(step, steps: int) -> float:
    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch-av", type=int, default=16)
    ap.add_argument("--batch-ar", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    ds = StoredDataset.open(prepare(load_config("configs/quickstart.yaml", PrepareConfig)).path)
    rows = load_split(ds, "av_sft").with_explanations()
    ctx = BuildContext(resolve_model("embedded"), 20, 576, ds.meta.injection_norm)
    ceiling = matmul_ceiling(torch.bfloat16)
    print(f"bf16 matmul ceiling: {ceiling:.0f} GFLOP/s, threads {torch.get_num_threads()}")
    bench_av(ctx, rows, args.batch_av, args.steps, ceiling)
    bench_ar(ctx, rows, args.batch_ar, args.steps, ceiling)


def bench_av(ctx, rows, b: int, steps: int, ceiling: float) -> None:
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    av = build("av", {}, ctx).train()
    v, ex = torch.from_numpy(rows.vectors[:b]), rows.explanations[:b]
    opt = torch.optim.AdamW([p for p in av.parameters() if p.requires_grad], lr=1e-5)

    def av_step():
        with autocast:
            loss = av.sft_loss(v, ex)
        loss.backward()
        opt.step()
        opt.zero_grad()

    resp = av.encode_responses(ex)
    lengths = [len(av.prompt_ids) + len(r) for r in resp]
    blocks = params(av.lm.model.layers)
    head = av.lm.lm_head.weight.numel()
    flops = (
        6 * blocks * sum(lengths)
        + 6 * head * sum(map(len, resp))
        + attention_flops(30, 576, lengths)
    )
    sec = time_steps(av_step, steps)
    print(
        f"AV SFT  batch {b}: {sum(lengths) / sec:.0f} tok/s, {flops / sec / 1e9:.0f} GFLOP/s, "
        f"{flops / sec / 1e9 / ceiling:.0%} of bf16 ceiling, {sec:.2f} s/step"
    )


def bench_ar(ctx, rows, b: int, steps: int, ceiling: float) -> None:
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    ar = build("ar", {}, ctx).train()
    v, ex = torch.from_numpy(rows.vectors[:b]), rows.explanations[:b]
    opt = torch.optim.AdamW(ar.parameters(), lr=1e-5)

    def ar_step():
        with autocast:
            loss = ar.loss(ex, v)
        loss.backward()
        opt.step()
        opt.zero_grad()

    lengths = [len(s) for s in ar.sequences(ex)]
    flops = 6 * params(ar.backbone.layers) * sum(lengths) + attention_flops(20, 576, lengths)
    sec = time_steps(ar_step, steps)
    print(
        f"AR SFT  batch {b}: {sum(lengths) / sec:.0f} tok/s, {flops / sec / 1e9:.0f} GFLOP/s, "
        f"{flops / sec / 1e9 / ceiling:.0%} of bf16 ceiling, {sec:.2f} s/step"
    )


if __name__ == "__main__":
    main()
