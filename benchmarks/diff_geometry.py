"""What a difference vector holds, beside the activation it was taken from (issue 28).

Two datasets prepared from the same documents and positions: a diff dataset (fine-tuned minus
base) and its base twin (the same prepare config without `target.diff_model`). It prints how much
of each one's variance lies in its top directions, and how much of the base activation a ridge map
from the difference recovers on held-out rows (fit on av_sft, scored on ar_sft).

    python benchmarks/diff_geometry.py .nla/datasets/diff-narrative-HASH .nla/datasets/BASE-HASH
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch

from nla_variants.core.ridge import Ridge
from nla_variants.data.store import StoredDataset

ROW_KEYS = ("example_id", "token_position", "split")  # where a diff row and its twin must agree


def split_vectors(dataset: StoredDataset, split: str) -> torch.Tensor:
    return torch.from_numpy(np.array(dataset.vectors(split), dtype=np.float64))


def bridge(d: torch.Tensor, h: torch.Tensor, penalty: float = 1.0) -> Callable:
    """The ridge map from a difference to the base activation of the same row (`core.ridge`),
    on differences standardised per dimension so the penalty weighs every dimension alike."""
    scale = d.std(0).clamp_min(1e-6)
    weight, bias = Ridge(d / scale).solve(h, penalty)
    return lambda x: (x.double() / scale) @ weight + bias


def top_share(x: torch.Tensor, ks: tuple[int, ...] = (1, 5, 20)) -> list[float]:
    """Share of the centred variance in the top k principal directions, for each k."""
    ev = torch.linalg.eigvalsh(torch.cov((x - x.mean(0)).T)).flip(0)
    return [float(ev[:k].sum() / ev.sum()) for k in ks]


def held_out(
    predicted: torch.Tensor, truth: torch.Tensor, mean: torch.Tensor
) -> tuple[float, float]:
    """FVE against the training mean, and the mean cosine, both centred on that mean."""
    p, t = predicted - mean, truth - mean
    fve = 1 - float(((p - t) ** 2).sum() / (t**2).sum())
    return fve, float(torch.nn.functional.cosine_similarity(p, t, dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diff")
    parser.add_argument("base")
    args = parser.parse_args()
    diff, base = StoredDataset.open(args.diff), StoredDataset.open(args.base)
    if diff.table(columns=list(ROW_KEYS)) != base.table(columns=list(ROW_KEYS)):
        raise SystemExit("the datasets' rows differ: prepare the base twin of the diff dataset")
    d, h = split_vectors(diff, "av_sft"), split_vectors(base, "av_sft")
    dt, ht = split_vectors(diff, "ar_sft"), split_vectors(base, "ar_sft")
    print(f"rows: {len(d)} av_sft (fit), {len(dt)} ar_sft (held out)")
    for name, x in (("difference", d), ("base activation", h)):
        shares = ", ".join(f"{s:.2f}" for s in top_share(x))
        ratio = float(x.mean(0).norm() / x.norm(dim=1).mean())
        print(
            f"{name}: variance in the top 1/5/20 directions {shares}; |mean| / mean |x| {ratio:.2f}"
        )
    for penalty in (1e-3, 1e-2, 1e-1, 1.0):
        fve, cos = held_out(bridge(d, h, penalty)(dt), ht, h.mean(0))
        print(
            f"difference -> base activation, ridge {penalty:g}: "
            f"held-out FVE {fve:.3f}, cosine {cos:.3f}"
        )


if __name__ == "__main__":
    main()
