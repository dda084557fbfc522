"""Do the fast training paths (issue 29) learn what the old one learned? The AV warm start of the
baseline recipe, N steps, twice from the same weights on the same batches:

- old: fp32-held frozen weights, SDPA attention, torch's default (per-tensor) AdamW;
- new: as a CPU trial trains now: frozen weights in bf16, eager attention, fused AdamW.

Both under bf16 autocast, lr 3e-4 with the recipe's warm-up and cosine, batch 8. Prints both loss
curves and their largest difference, beside the step-to-step noise of the old curve (bf16
rounding alone makes two kernels drift apart slowly; the question is whether they train alike).

    python benchmarks/train_numerics.py [--steps 50] [--batch 8]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml
from peer import context

from nla_variants.config import PrepareConfig, load_config
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.training.data import load_split
from nla_variants.training.optim import adamw
from nla_variants.training.warm_start import warmup_cosine
from nla_variants.variants.large_models import train_attention
from nla_variants.variants.registry import build


def curve(new: bool, ctx, section: dict, rows, steps: int, batch: int) -> tuple[list[float], float]:
    torch.manual_seed(0)
    av = build("av", section, replace(ctx, frozen_dtype=torch.bfloat16 if new else None)).train()
    params = [p for p in av.parameters() if p.requires_grad]
    if new:
        train_attention(av, "cpu")
        opt = adamw(params, 3e-4, 0.0)
    else:
        opt = torch.optim.AdamW(params, lr=3e-4, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(10, steps))
    losses, t = [], time.perf_counter()
    for s in range(steps):
        at = slice(s * batch, (s + 1) * batch)
        vectors, texts = torch.from_numpy(rows.vectors[at]), rows.explanations[at]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = av.sft_loss(vectors, texts)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    return losses, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    ds = StoredDataset.open(prepare(load_config("configs/quickstart.yaml", PrepareConfig)).path)
    rows = load_split(ds, "av_sft").with_explanations()
    section = yaml.safe_load(Path("configs/train_baseline.yaml").read_text())["av"]
    ctx = context(ds)
    old, t_old = curve(False, ctx, section, rows, args.steps, args.batch)
    new, t_new = curve(True, ctx, section, rows, args.steps, args.batch)
    for s in range(0, args.steps, 5):
        print(f"step {s:3d}: old {old[s]:.4f}  new {new[s]:.4f}  diff {new[s] - old[s]:+.4f}")
    diffs = [abs(a - b) for a, b in zip(old, new, strict=True)]
    tail = slice(args.steps - 10, args.steps)
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    noise = mean([abs(a - b) for a, b in zip(old[1:], old[:-1], strict=False)])
    print(
        f"largest |new - old| {max(diffs):.4f} (step {diffs.index(max(diffs))}), mean "
        f"{mean(diffs):.4f}; mean of the last 10: old {mean(old[tail]):.4f}, new "
        f"{mean(new[tail]):.4f}; the old curve's mean step-to-step change {noise:.4f}"
    )
    print(f"wall: old {t_old:.0f} s, new {t_new:.0f} s ({t_old / t_new:.2f}x), {args.steps} steps")


if __name__ == "__main__":
    main()
