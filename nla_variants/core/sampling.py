"""Sampling that is a function of a seed per rollout, not of the batch or the process.

`torch.multinomial` over a batch draws from one random stream, so a rollout's sample depends
on which rows share its batch and on the global RNG state. Here each rollout has its own
generator and a token is argmax(logits / T + Gumbel noise), which is a draw from
softmax(logits / T): the same rollout gets the same tokens alone, in any batch, on any rank of
a multi-process trial, and after a resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor


def seed_of(*parts: int) -> int:
    """A generator seed (63 bits) from integers, e.g. (trial seed, step, row): a hash, so any
    trial seed and step fit, and nearby tuples give unrelated streams."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def rollout_seeds(row_seeds: Sequence[int], samples: int) -> list[int]:
    """One seed per rollout: `samples` consecutive rollouts per row seed."""
    return [seed_of(s, j) for s in row_seeds for j in range(samples)]


class SeededSampling(LogitsProcessor):
    """Turns greedy decoding into sampling at `temperature` with one generator per row."""

    def __init__(self, seeds: Sequence[int], temperature: float, device: torch.device) -> None:
        self.temperature = temperature
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        exp = torch.stack(
            [
                torch.empty(vocab, device=scores.device).exponential_(generator=g)
                for g in self.generators
            ]
        )
        return scores.float() / self.temperature - exp.log()  # -log Exp(1) is Gumbel noise
