"""Padding token sequences into one batch: the one place ids and attention mask are built
(right-padded for training and scoring, left-padded for batched generation)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def pad_right(
    seqs: Sequence[Sequence[int] | torch.Tensor],
    pad_id: int,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences -> (ids [B, W], attention mask [B, W]), both long, padded on the right to
    the longest sequence (W); the mask is 1 on real tokens and 0 on padding."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long, device=device)
        mask[row, : len(seq)] = 1
    return ids, mask


def pad_left(
    seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """As `pad_right`, but padded on the left, so every row's last token is at the end: what
    batched `generate` continues from."""
    ids, mask = pad_right([list(reversed(s)) for s in seqs], pad_id, device)
    return ids.flip(1), mask.flip(1)
