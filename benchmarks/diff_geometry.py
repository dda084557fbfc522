"""What a difference vector holds, beside the activation it was taken from (issue 28).

Two datasets prepared from the same documents and positions: a diff dataset (fine-tuned minus
base) and its base twin (the same prepare config without `target.diff_model`). It prints how much
of each one's variance lies in its top directions, and how much of the base activation a ridge map
from the difference recovers on held-out rows (fit on av_sft, scored on ar_sft).

    python benchmarks/diff_geometry.py .nla/datasets/diff-narrative-HASH .nla/datasets/BASE-HASH
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from nla_variants.data.store import StoredDataset


def top_share(x: torch.Tensor, ks: tuple[int, ...] = (1, 5, 20)) -> list[float]:
    """Share of the centred variance in the top k principal directions, for each k."""
    ev = torch.linalg.eigvalsh(torch.cov((x - x.mean(0)).T)).flip(0)
    return [float(ev[:k].sum() / ev.sum()) for k in ks]


def ridge_fve(x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, yt: torch.Tensor, lam: float):
    """Held-out FVE and mean cosine of the ridge map x -> y (x standardised, both centred with
    the training statistics; the penalty is relative to the rows)."""
    mx, sx, my = x.mean(0), x.std(0).clamp_min(1e-6), y.mean(0)
    a, b, at, bt = (x - mx) / sx, y - my, (xt - mx) / sx, yt - my
    w = torch.linalg.solve(a.T @ a + lam * len(a) * torch.eye(a.shape[1], dtype=a.dtype), a.T @ b)
    p = at @ w
    fve = 1 - float(((p - bt) ** 2).sum() / (bt**2).sum())
    return fve, float(torch.nn.functional.cosine_similarity(p, bt, dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("diff")
    parser.add_argument("base")
    args = parser.parse_args()
    diff, base = StoredDataset.open(args.diff), StoredDataset.open(args.base)
    for column in ("doc_id", "position", "split"):
        if column in diff.table().column_names:
            a = diff.table(columns=[column]).column(0).to_pylist()
            if a != base.table(columns=[column]).column(0).to_pylist():
                raise SystemExit(f"the datasets' rows differ in {column}: prepare the base twin")

    def split(ds: StoredDataset, name: str) -> torch.Tensor:
        return torch.from_numpy(np.array(ds.vectors(name), dtype=np.float64))

    d, h = split(diff, "av_sft"), split(base, "av_sft")
    dt, ht = split(diff, "ar_sft"), split(base, "ar_sft")
    print(f"rows: {len(d)} av_sft (fit), {len(dt)} ar_sft (held out)")
    for name, x in (("difference", d), ("base activation", h)):
        shares = ", ".join(f"{s:.2f}" for s in top_share(x))
        ratio = float(x.mean(0).norm() / x.norm(dim=1).mean())
        print(
            f"{name}: variance in the top 1/5/20 directions {shares}; |mean| / mean |x| {ratio:.2f}"
        )
    for lam in (1e-3, 1e-2, 1e-1, 1.0):
        fve, cos = ridge_fve(d, h, dt, ht, lam)
        print(
            f"difference -> base activation, ridge {lam:g}: held-out FVE {fve:.3f}, cosine {cos:.3f}"
        )


if __name__ == "__main__":
    main()
