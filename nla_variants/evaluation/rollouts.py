"""The one rollout scorer: AV generation -> explanation extraction -> AR prediction -> score.

RL's reward and evaluation's round trip both come from `score_rollouts`, so a change to how a
rollout is scored (what counts as failed, what a failure costs, how quoting is measured) reaches
the reward and the metric together. A rollout fails when its explanation tag never closes or
the AV's `extract` rejects it (a structured AV's schema); a failed rollout is predicted as the
zero vector, scores the orthogonal MSE (2) and is never shown to the AR.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from nla_variants.common import distributed
from nla_variants.core.text import extract_explanation, quote_rate
from nla_variants.core.vectors import ORTHOGONAL_MSE, centered_cosine, normalized_mse

FAILED_COSINE = -1.0  # the centered_cosine reward of a failed rollout: the worst it can be
REWARDS = ("mse", "centered_cosine")


def batches(n: int, size: int):
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


@torch.no_grad()
def generate_all(
    av,
    vectors: torch.Tensor,
    batch_size: int,
    max_new_tokens: int,
    bar: str | None = None,
    autocast: contextlib.AbstractContextManager | None = None,
    shard: bool = False,
    **generate_kwargs: Any,
) -> tuple[list[str], list[list[int]]]:
    """The AV's generations (texts, token ids) for `vectors`, in batches (`generate_kwargs`, e.g.
    temperature, num_samples and seeds, go to `av.generate`). `shard`: in a multi-process
    trial each rank generates its share of the rows and every rank gets all of them back, in
    order. `bar`: the title of a progress bar over the rows; None: no bar."""
    device = next(av.parameters()).device
    autocast = autocast or contextlib.nullcontext()
    mine = distributed.share(len(vectors)) if shard else slice(0, len(vectors))
    rows = vectors[mine]
    texts: list[str] = []
    tokens: list[list[int]] = []
    with tqdm(total=len(rows), desc=bar, unit="row", leave=False, disable=bar is None) as done:
        for s in batches(len(rows), batch_size):
            kwargs = dict(generate_kwargs)
            seeds = kwargs.pop("seeds", None)
            if seeds is not None:
                kwargs["seeds"] = list(seeds)[mine][s]
            with autocast:
                out, ids = av.generate(rows[s].to(device), max_new_tokens=max_new_tokens, **kwargs)
            texts.extend(out)
            tokens.extend(ids)
            done.update(len(rows[s]))
    if shard and distributed.world_size() > 1:
        parts = distributed.gather_objects((texts, tokens))
        texts = [t for part, _ in parts for t in part]
        tokens = [t for _, part in parts for t in part]
    return texts, tokens


def explain(
    av, vectors: torch.Tensor, batch_size: int, max_new_tokens: int, bar: str | None = None
) -> tuple[list[str], list[str | None]]:
    """The AV's greedy generations for `vectors` and the explanation extracted from each (None:
    unclosed tag or a violation of the AV's output format); sharded over a trial's ranks."""
    texts, _ = generate_all(av, vectors, batch_size, max_new_tokens, bar, shard=True)
    return texts, [av.extract(t) for t in texts]


@torch.no_grad()
def ar_predict(
    ar, explanations: Sequence[str], sources: Sequence[str], batch_size: int
) -> torch.Tensor:
    """The AR's predictions for explanations (with their source prefixes), float32 on the CPU."""
    preds = [
        ar(list(explanations[s]), list(sources[s])) for s in batches(len(explanations), batch_size)
    ]
    return torch.cat(preds).float().cpu()


@dataclass
class Rollouts:
    """N = rows x samples rollouts, `samples` consecutive ones per row."""

    texts: list[str]
    tokens: list[list[int]]
    explanations: list[str | None]  # None: failed
    sources: list[str]  # the source prefix of each rollout's row
    targets: torch.Tensor  # [N, d] float32, CPU: the vector each rollout explains
    pred: torch.Tensor  # [N, d] float32, CPU: the AR's prediction (0 for a failed rollout)
    max_new_tokens: int
    seconds: dict[str, float] = field(default_factory=dict)  # generate, score

    @property
    def ok(self) -> torch.Tensor:
        return torch.tensor([e is not None for e in self.explanations], dtype=torch.bool)

    @property
    def closed(self) -> list[int]:
        return [i for i, e in enumerate(self.explanations) if e is not None]

    @property
    def mse(self) -> torch.Tensor:
        """Normalised MSE per rollout; a failed one scores the orthogonal MSE."""
        return normalized_mse(self.pred, self.targets).masked_fill(~self.ok, ORTHOGONAL_MSE)

    def mse_against(self, targets: torch.Tensor) -> torch.Tensor:
        """The same against other targets (a shuffled control)."""
        return normalized_mse(self.pred, targets.float()).masked_fill(~self.ok, ORTHOGONAL_MSE)

    def reward(self, kind: str, train_mean: torch.Tensor) -> torch.Tensor:
        """mse: -normalised MSE (-2 when failed); centered_cosine: the cosine of prediction and
        target after subtracting the training mean direction (-1 when failed)."""
        if kind == "mse":
            return -self.mse
        score = torch.full((len(self.texts),), FAILED_COSINE)
        ok = self.ok
        if bool(ok.any()):
            score[ok] = centered_cosine(self.pred[ok], self.targets[ok], train_mean.cpu()).cpu()
        return score

    @property
    def cut(self) -> list[bool]:
        """Failed because generation hit the token cap (not a wrong format)."""
        return [
            e is None and len(t) >= self.max_new_tokens
            for t, e in zip(self.tokens, self.explanations, strict=True)
        ]

    def schema_violation_rate(self) -> float:
        """Share of rollouts with a closed tag that the AV's format rejected."""
        bad = sum(
            e is None and extract_explanation(t) is not None
            for t, e in zip(self.texts, self.explanations, strict=True)
        )
        return bad / max(len(self.texts), 1)

    def quote_rates(self, ngram: int = 3) -> list[float]:
        """Per closed explanation: the share of its word n-grams found in its source prefix."""
        return [quote_rate(self.explanations[i], self.sources[i], ngram) for i in self.closed]

    def quote_rate(self, ngram: int = 3) -> float:
        """The mean of `quote_rates` (0 with no closed explanation)."""
        rates = self.quote_rates(ngram)
        return float(np.mean(rates)) if rates else 0.0


def score_rollouts(
    av,
    ar,
    vectors: torch.Tensor,
    sources: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    samples: int = 1,
    temperature: float = 0.0,
    seeds: Sequence[int] | None = None,
    autocast: contextlib.AbstractContextManager | None = None,
    shard: bool = False,
    bar: str | None = None,
) -> Rollouts:
    """Generate `samples` explanations per vector (greedy at temperature 0; `seeds`, one per
    vector, make sampling a function of the seed alone, whatever the batch or the rank), extract them and let the AR predict
    each closed one. `shard`: split the generation over a multi-process trial's ranks."""
    t0 = time.perf_counter()
    texts, tokens = generate_all(
        av,
        vectors,
        batch_size,
        max_new_tokens,
        bar,
        autocast,
        shard,
        temperature=temperature,
        num_samples=samples,
        **({"seeds": seeds} if seeds is not None else {}),
    )
    t1 = time.perf_counter()
    explanations = [av.extract(t) for t in texts]
    rollout_sources = [sources[i // samples] for i in range(len(texts))]
    targets = vectors.float().cpu().repeat_interleave(samples, 0)
    pred = torch.zeros_like(targets)
    closed = [i for i, e in enumerate(explanations) if e is not None]
    if closed:
        with autocast or contextlib.nullcontext():
            pred[closed] = ar_predict(
                ar,
                [explanations[i] for i in closed],
                [rollout_sources[i] for i in closed],
                batch_size * samples,
            )
    t2 = time.perf_counter()
    seconds = {"generate": t1 - t0, "score": t2 - t1}
    return Rollouts(
        texts, tokens, explanations, rollout_sources, targets, pred, max_new_tokens, seconds
    )
