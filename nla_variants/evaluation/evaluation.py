"""The one evaluation every command uses, on the held-out `eval` split.

Metrics (all FVEs against the predict-the-training-mean baseline, on normalised vectors):
- `ar_teacher_fve`: the AR alone, reading the teacher's explanations.
- `roundtrip_fve`: AV -> explanation -> AR, the NLA's headline number. A generation whose
  explanation tag never closes scores the orthogonal MSE (2), as in RL.
- `*_shuffled_fve`: the same predictions scored against a permutation of the targets: the control.
  `*_gap` = real - shuffled is the evidence that anything about the vector was learned.
- `*_fve_raw`: the same against the classical baseline (variance around the raw mean of the
  unit vectors), lower than the FVE above; other NLA work reports this one.
- `av_nll_gap`: teacher-forced NLL of the teacher explanations with shuffled minus matching
  vectors (nats/token) and `av_nll_win_rate`: the AV's own test that it reads the vector.
- `prompt_fve`: the text-only reading, the bar an NLA must clear: the same AR reading the
  teacher's explanation written from the prefix alone (where the teacher also stated what it read
  from the model, `teacher.next_tokens`, its text-only explanation the dataset kept; or the
  `prompt` a caller passes).
- `beats_prompt` = `roundtrip_fve` - `prompt_fve` on the same rows, with its paired 95% bootstrap
  interval over rows (`beats_prompt_low`, `beats_prompt_high`): above zero, the AV's explanation
  of the vector carries more than a reading of the text alone.
- `ar_empty_fve`: the AR reading an empty explanation (with the source prefix, for an AR that
  reads it). A constant prediction for an AR that does not read the prefix (FVE <= 0, 0 for the
  mean direction); for a full-context AR, the part of its score the explanation did not add.
- `quote_rate` (share of explanation n-grams found in the source prefix), `length_mean` (words),
  `tag_failure_rate` (no closed tag, or an output the AV's `extract` rejects), and of those
  `schema_violation_rate` (closed tag but invalid format: the structured AV's schema).
- Each metric registered with `@register_metric` (`nla_variants/evaluation/metrics.py`, where
  every name above is registered with its direction): the function's value on these rows.
- The AR reads teacher explanations rendered by `av.render_target`, as it should be trained.
- With a `Faithfulness` (`nla_variants/evaluation/faithfulness.py`): `faithful_P` / `contradict_P` per
  ground-truth property P, beside the linear probe (`_probe`, `probe_P`), the teacher
  (`_teacher`), a text-only explanation (`_text_only`) and other rows' explanations
  (`_shuffled`, the chance level); `faithful_mean` / `contradict_mean` over properties.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch

from nla_variants.core.intervals import paired_fve_difference
from nla_variants.core.text import length_stats
from nla_variants.core.vectors import (
    baseline_mse,
    derangement,
    fve,
    fve_of,
    normalized_mse,
    raw_baseline_mse,
)
from nla_variants.evaluation import metrics as M
from nla_variants.evaluation.rollouts import ar_predict, batches, score_rollouts
from nla_variants.evaluation.row_scores import RowScores

if TYPE_CHECKING:
    from nla_variants.data.store import SplitRows
    from nla_variants.evaluation.faithfulness import Faithfulness

# The names `evaluate` returns, registered once (nla_variants/evaluation/metrics.py): it builds
# its built-in metrics from these, and `metric_names` lists them for what must be known before a
# trial runs (a sweep's report and objectives).
ROUNDTRIP = M.group("roundtrip")
OUTPUT = M.group("output")
(ROWS,), (EMPTY,) = M.group("rows"), M.group("empty")
# only where the scored rows have teacher explanations (the dataset's teacher explained `eval`)
AR_TEACHER = M.group("ar_teacher")
PROMPT = M.group("prompt")
NLL_GAP = M.group("nll_gap")


def metric_names(teacher: bool, faithfulness: Iterable[str] = ()) -> list[str]:
    """The metric names `evaluate` can return: the registry's built-ins (with `teacher`, eval
    rows with teacher explanations, the AR-on-teacher and NLL-gap scores), the `faithfulness`
    names (`faithfulness.metric_names`), then the registered metric functions'."""
    kept = [m for m in M.metrics().values() if teacher or not m.teacher]
    builtin = [m.name for m in kept if m.compute is None]
    return [*builtin, *faithfulness, *(m.name for m in kept if m.compute is not None)]


def empty_fve(
    ar, prefixes: Sequence[str], vectors: torch.Tensor, mean: torch.Tensor, batch_size: int
) -> float:
    """FVE of the AR given an empty explanation and the source prefixes."""
    return fve_of(ar_predict(ar, [""] * len(prefixes), list(prefixes), batch_size), vectors, mean)


def _fves(
    pred_mse: torch.Tensor,
    targets: torch.Tensor,
    mean: torch.Tensor,
    perm: torch.Tensor,
    shuffled_mse: torch.Tensor,
) -> tuple[float, float]:
    return fve(pred_mse, baseline_mse(targets, mean)), fve(
        shuffled_mse, baseline_mse(targets[perm], mean)
    )


@torch.no_grad()
def nll_rows(
    av, vectors: torch.Tensor, shuffled: torch.Tensor, explanations: Sequence[str]
) -> torch.Tensor:
    """Per row: the teacher explanation's summed NLL given its own vector, given the shuffled
    one, and its token count: [n, 3] on the CPU (what `nll_gap_scores` summarises)."""
    responses = av.encode_responses(list(explanations))
    device = next(av.parameters()).device
    real, mask = av.response_logprobs(vectors.to(device), responses)
    shuf, _ = av.response_logprobs(shuffled.to(device), responses)
    return torch.stack([-real.sum(1), -shuf.sum(1), mask.sum(1)], 1).float().cpu()


def nll_gap_scores(rows: torch.Tensor) -> dict[str, float]:
    """`av_nll_gap` = per-token NLL with shuffled minus with matching vectors (0 for an AV that
    ignores its vector); `av_nll_gap_per_explanation`, the same in nats per explanation (what the
    vector tells about the whole text, comparable across teacher formats of different lengths);
    `av_nll_win_rate`, the share of rows whose own vector gives the lower NLL (0.5 by chance).
    From `nll_rows`."""
    real, shuf, tokens = rows.sum(0).tolist()
    win_rate = float((rows[:, 0] < rows[:, 1]).float().mean())
    values = (real / tokens, shuf / tokens, (shuf - real) / tokens, (shuf - real) / len(rows))
    return dict(zip(NLL_GAP, (*values, win_rate), strict=True))


def av_nll_gap(
    av,
    vectors: torch.Tensor,
    explanations: Sequence[str],
    *,
    seed: int = 0,
    batch_size: int = 32,
) -> dict[str, float]:
    """Does the AV read its vector? `nll_gap_scores` of the teacher explanations, each scored
    with its own vector and with a derangement of them."""
    rows = av_nll_rows(av, vectors, explanations, seed=seed, batch_size=batch_size)
    return nll_gap_scores(rows) if rows is not None else {}


def av_nll_rows(
    av, vectors: torch.Tensor, explanations: Sequence[str], *, seed: int = 0, batch_size: int = 32
) -> torch.Tensor | None:
    """`nll_rows` of the explanations with their own vectors and a derangement of them (None
    under two rows, which cannot be deranged)."""
    n = len(explanations)
    if n < 2:
        return None
    shuffled = vectors[derangement(n, seed)]
    rows = [nll_rows(av, vectors[s], shuffled[s], explanations[s]) for s in batches(n, batch_size)]
    return torch.cat(rows)


EVAL_ROWS_SEED = 0


def scored_rows(rows: SplitRows, max_samples: int) -> SplitRows:
    """The eval rows a score is computed on: all of them, or `max_samples` spread over the
    split by one fixed seed (the same rows for every trial and seed, in split order). The split
    follows corpus order, so its first rows would be one or two genres only."""
    if len(rows) <= max_samples:
        return rows
    g = torch.Generator().manual_seed(EVAL_ROWS_SEED)
    return rows.take(sorted(torch.randperm(len(rows), generator=g)[:max_samples].tolist()))


@torch.no_grad()
def evaluate(
    av,
    ar,
    rows: SplitRows,
    train_mean: torch.Tensor,
    *,
    max_samples: int = 256,
    max_new_tokens: int = 96,
    batch_size: int = 32,
    table_rows: int = 24,
    quote_ngram: int = 3,
    seed: int = 0,
    autocast: contextlib.AbstractContextManager | None = None,
    faithfulness: Faithfulness | None = None,
    prompt: Mapping[str, str | None] | None = None,
    progress: bool = False,
) -> tuple[dict[str, float], list[dict], RowScores]:
    """Score the AV/AR pair on `rows` (the eval split). Returns (metrics, sample table rows,
    the per-row scores the metrics are means of). `faithfulness` (built for the rows' dataset)
    adds the faithfulness scores; `prompt`: the text-only explanation by example id (default:
    the teacher's, written from the prefix alone); `progress`: a bar over the AV's
    generations."""
    rows = scored_rows(rows, max_samples)
    n = len(rows)
    vectors = torch.tensor(rows.vectors[:n])  # a copy: arrow-backed arrays are read-only
    prefixes = rows.prefixes[:n]
    teacher = rows.explanations[:n]
    ids = rows.example_ids[:n]
    if prompt is None and rows.prompts is not None:  # the teacher's text-only explanations
        prompt = dict(zip(rows.example_ids, rows.prompts, strict=True))
    prompts = teacher if prompt is None else [prompt.get(e) for e in ids]
    perm = derangement(n, seed)
    mean = train_mean.float()
    ctx = autocast or contextlib.nullcontext()
    metrics: dict[str, float] = {ROWS: float(n)}
    per_row = RowScores(ids)

    with ctx:
        # the AR alone, on teacher explanations
        have = [i for i in range(n) if teacher[i] is not None]
        teacher_mse = None
        if have:
            rendered = [av.render_target(teacher[i]) for i in have]  # the AV's output format
            pred = ar_predict(ar, rendered, [prefixes[i] for i in have], batch_size)
            tv = vectors[have]
            tperm = derangement(len(have), seed)
            teacher_mse = normalized_mse(pred, tv)
            real, shuf = _fves(teacher_mse, tv, mean, tperm, normalized_mse(pred, tv[tperm]))
            raw = fve(teacher_mse, raw_baseline_mse(tv, mean))
            metrics.update(zip(AR_TEACHER, (real, shuf, real - shuf, raw), strict=True))
            per_row.put("teacher_mse", have, teacher_mse)
            nll = av_nll_rows(av, tv, [teacher[i] for i in have], seed=seed, batch_size=batch_size)
            if nll is not None:
                metrics.update(nll_gap_scores(nll))
                per_row.put_nll(have, nll)

        # the text-only reading the NLA must beat: the AR on explanations of the prefix alone
        said = [i for i in range(n) if prompts[i] is not None]
        prompt_mse = teacher_mse if prompt is None else None
        if said and prompt is not None:
            rendered = [av.render_target(prompts[i]) for i in said]
            pred = ar_predict(ar, rendered, [prefixes[i] for i in said], batch_size)
            prompt_mse = normalized_mse(pred, vectors[said])

        # the AR given an empty explanation
        metrics[EMPTY] = empty_fve(ar, prefixes, vectors, mean, batch_size)

        # the round trip: the same scorer as RL's reward (rollouts.py)
        bar = "evaluation: AV explanations" if progress else None
        ro = score_rollouts(
            av,
            ar,
            vectors,
            prefixes,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            shard=True,
            bar=bar,
        )
    texts, explained, failed = ro.texts, ro.explanations, ~ro.ok
    rt_mse = ro.mse
    shuffled_mse = ro.mse_against(vectors[perm])
    real, shuf = _fves(rt_mse, vectors, mean, perm, shuffled_mse)
    raw = fve(rt_mse, raw_baseline_mse(vectors, mean))
    metrics.update(zip(ROUNDTRIP, (real, shuf, real - shuf, raw), strict=True))
    if said:
        base = baseline_mse(vectors[said], mean)
        beats = paired_fve_difference(rt_mse[said], prompt_mse, base)  # FVE(rt) - FVE(prompt)
        metrics.update(zip(PROMPT, (fve(prompt_mse, base), *beats), strict=True))
        per_row.put("prompt_mse", said, prompt_mse)
    per_row.put("base_mse", range(n), baseline_mse(vectors, mean))
    per_row.put("roundtrip_mse", range(n), rt_mse)
    per_row.put("roundtrip_shuffled_mse", range(n), shuffled_mse)
    per_row.flags["tag_failure"] = failed.tolist()
    per_row.flags["explanation"] = list(explained)
    output = (
        float(failed.float().mean()),
        ro.schema_violation_rate(),  # closed tag, rejected by the AV's output format
        ro.quote_rate(quote_ngram),
        length_stats([explained[i] for i in ro.closed])["mean"],
    )
    metrics.update(zip(OUTPUT, output, strict=True))
    if faithfulness is not None:  # an unclosed generation states nothing
        metrics.update(faithfulness.metrics(ids, vectors, explained, teacher, perm))
        per_row.flags.update(faithfulness.row_flags(ids, explained))

    base = baseline_mse(vectors, mean)
    registered = [m for m in M.functions() if have or not m.teacher]
    if registered:  # the registry's metric functions, on what the evaluation has
        data = M.EvalData(
            *map(list, (ids, prefixes, teacher, explained, texts)), vectors, rt_mse, base, av, ar
        )
        for m in registered:
            metrics.update(_registered_value(m, data, per_row))
    per_sample = 1.0 - rt_mse / base.mean()
    table = [
        {
            "example_id": rows.example_ids[i],
            "prefix_end": prefixes[i][-160:],
            "teacher_explanation": teacher[i] or "",
            "av_explanation": explained[i] if explained[i] is not None else texts[i][:300],
            "tag_ok": explained[i] is not None,
            "fve": round(float(per_sample[i]), 4),
        }
        for i in range(min(n, table_rows))
    ]
    return metrics, table, per_row


def _registered_value(m: M.Metric, data: M.EvalData, per_row: RowScores) -> dict[str, float]:
    """A registered metric function's value (none where it returns None); a per-row metric's
    values also become its column of the per-row scores."""
    value = m.compute(data)
    if value is None:
        return {}
    if m.per_row:
        column = torch.as_tensor(value, dtype=torch.float32).reshape(-1)
        if len(column) != len(per_row):
            raise ValueError(f"metric {m.name!r} gave {len(column)} values for {len(per_row)} rows")
        per_row.put(m.name, range(len(per_row)), column)
        value = column.mean()
    return {m.name: float(value)}
