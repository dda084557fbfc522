"""Sampling that is a function of a seed per rollout, not of the batch or the process.

`torch.multinomial` over a batch draws from one random stream, so a rollout's sample depends
on which rows share its batch and on the global RNG state. Here each rollout has its own
generator, and a token is drawn from softmax(logits / T) by the inverse of its cumulative
distribution at one uniform number of that generator: the same rollout gets the same tokens
alone, in any batch, on any rank of a multi-process trial, and after a resume. One number per
token, not one per vocabulary entry (Gumbel noise over a 49k vocabulary took a fifth of a
decode step on a 2-core CPU). The draws changed with that (commit de83312): a run resumed
across it samples other tokens from the same seeds, from the same distribution.
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
    """Turns greedy decoding into sampling at `temperature` with one generator per row: the
    scores it returns are 0 at the drawn token and -inf elsewhere."""

    def __init__(self, seeds: Sequence[int], temperature: float, device: torch.device) -> None:
        self.temperature = temperature
        self.generators = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.Tensor:
        # fp32: the running sum's rounding (~1e-6 of the total) moves no token's probability by
        # more than that, far below what 10^4 rollouts could tell apart
        cdf = torch.softmax(scores.float() * (1.0 / self.temperature), dim=-1).cumsum(-1)
        u = torch.cat(
            [
                torch.rand(1, generator=g, device=scores.device, dtype=cdf.dtype)
                for g in self.generators
            ]
        )
        # the first token whose cumulative probability exceeds u: never a zero-probability one
        pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True)
        pick = pick.clamp_max(scores.shape[-1] - 1)
        out = torch.full(scores.shape, float("-inf"), device=scores.device)
        return out.scatter_(1, pick, 0.0)
