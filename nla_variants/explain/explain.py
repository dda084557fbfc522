"""`nla explain`: what is the model thinking at each token of any text?

The target reads the text once (early exit at the NLA's layer); the residual at every chosen token
goes to the AV, which explains it (greedy, or k samples at a temperature), in batches; the AR
reconstructs each explanation and the reconstruction is scored against the token's true vector and,
as the control, against another token's vector (a derangement over the explained tokens). A reader
can then tell explanations that carry signal from fluent guesses. Where the NLA records an offline
teacher, that teacher's explanation of the same prefix (written from the text alone: the
prompting baseline) is scored by the same AR beside it.

Scores reuse the project's one scoring path (`nla_variants.core.vectors`): cosine = 1 - MSE/2 on
normalised vectors; FVE against the mean training direction where the NLA records it. A generation
whose tag never closes scores as orthogonal, as in evaluation and RL. `--diff-model M2` explains
`M2 - target` activations, the diffing datasets' convention (`nla_variants.data.diffing`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from nla_variants.checks import check_device
from nla_variants.common.errors import NLAError
from nla_variants.core.text import quote_rate
from nla_variants.core.vectors import (
    ORTHOGONAL_MSE,
    baseline_mse,
    derangement,
    fve,
    normalized_mse,
)
from nla_variants.evaluation.rollouts import ar_predict, generate_all
from nla_variants.variants.pair import NLA, NLARef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextInput:
    text: str
    where: str  # how the user gave it, for messages: "--text", "notes.txt", "rows.jsonl line 3"
    id: str | None = None


@dataclass(frozen=True)
class ExplainSettings:
    positions: str | None = None  # "0,5,10:20,-1"; None: every token
    samples: int = 1
    temperature: float = 0.0
    max_new_tokens: int | None = None  # None: the AV's own cap
    batch_size: int = 64
    baseline: str = "auto"  # auto | teacher | none
    diff_model: str | None = None
    seed: int = 0
    quote_ngram: int = 3
    precision: str = "auto"  # auto | bf16 | fp32
    device: str | None = None


@dataclass
class Document:
    """One input text, tokenised the way the NLA's activations were taken."""

    input: TextInput
    ids: list[int]  # what the target reads (with a BOS where the NLA's convention has one)
    offset: int  # 1 when a BOS was prepended: text token t is ids[t + offset]
    pieces: list[str]  # each text token's characters, for display
    positions: list[int]  # text-token indices to explain


@dataclass
class ExplainResult:
    records: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)


# -- inputs ---------------------------------------------------------------------------------------


def read_inputs(
    text: str | None = None,
    file: str | None = None,
    jsonl: str | None = None,
    column: str | None = None,
) -> list[TextInput]:
    """The texts to explain, from exactly one of --text, --file, --jsonl (with --column)."""
    given = [x is not None for x in (text, file, jsonl)]
    if sum(given) != 1:
        raise NLAError("give exactly one of --text, --file, --jsonl", "e.g. --text 'Any text.'")
    if text is not None:
        return [TextInput(text, "--text")]
    path = Path(file or jsonl)  # type: ignore[arg-type]
    if not path.is_file():
        raise NLAError(f"{path} does not exist", "pass an existing text file")
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise NLAError(f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from None
    if file is not None:
        return [TextInput(content, str(path))]
    if not column:
        raise NLAError("--jsonl needs --column NAME", "name the field holding the text")
    return list(_jsonl_rows(path, content, column))


def _jsonl_rows(path: Path, content: str, column: str) -> Iterator[TextInput]:
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise NLAError(f"{where} is not JSON", "write one JSON object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get(column), str):
            raise NLAError(f"{where} has no text field {column!r}", "pass the right --column")
        yield TextInput(row[column], where, str(row.get("id", n)))


def parse_positions(spec: str | None, n: int, where: str) -> list[int]:
    """Token indices from "3", "-1" (from the end), "10:20" (a Python slice), comma-separated;
    None means every token. Sorted, without duplicates."""
    if spec is None:
        return list(range(n))
    chosen: set[int] = set()
    for item in (part.strip() for part in spec.split(",")):
        try:
            if ":" in item:
                bounds = [int(b) if b.strip() else None for b in item.split(":")]
                if len(bounds) > 3:
                    raise ValueError
                chosen.update(range(n)[slice(*bounds)])
                continue
            index = int(item)
        except ValueError:
            raise NLAError(
                f"--positions {spec!r}: {item!r} is not a token index or a slice",
                "write e.g. --positions 0,5,10:20,-1",
            ) from None
        if not -n <= index < n:
            raise NLAError(
                f"--positions {index} is outside {where}'s {n} tokens", f"use -{n}..{n - 1}"
            )
        chosen.add(index % n)
    if not chosen:
        raise NLAError(f"--positions {spec!r} selects no token of {where}", "widen the range")
    return sorted(chosen)


def _pieces(tokenizer: Any, text: str, ids: list[int], offsets: list | None) -> list[str]:
    """Each token's characters, in order, so that the pieces join to the text (a character split
    over several tokens goes to the first)."""
    if offsets is None:
        return [tokenizer.decode([i]) for i in ids]
    out, end = [], 0
    for _, stop in offsets:
        out.append(text[end:stop] if stop > end else "")
        end = max(end, stop)
    if out:
        out[-1] += text[end:]
    return out


def tokenize_inputs(
    tokenizer: Any,
    inputs: Sequence[TextInput],
    ref: NLARef,
    settings: ExplainSettings,
    context: int,
) -> list[Document]:
    """Tokenise like the NLA's data (no special tokens and special-token strings split as text,
    or the release layout's BOS), with every input check that needs no model weights."""
    if not inputs:
        raise NLAError("there is no text to explain", "pass non-empty text")
    bos = tokenizer.bos_token_id if ref.add_bos else None
    if bos is not None and tokenizer("x")["input_ids"][:1] != [bos]:
        bos = None  # this tokenizer adds no BOS
    docs = []
    for item in inputs:
        if not item.text.strip():
            raise NLAError(f"{item.where}: the text is empty", "pass some text to explain")
        enc = tokenizer(
            item.text,
            add_special_tokens=False,
            split_special_tokens=True,
            return_offsets_mapping=bool(getattr(tokenizer, "is_fast", False)),
        )
        text_ids = list(enc["input_ids"])
        ids = ([bos] if bos is not None else []) + text_ids
        if context and len(ids) > context:
            raise NLAError(
                f"{item.where}: {len(ids)} tokens, more than the target's context of {context}",
                f"split the text into pieces of at most {context} tokens",
            )
        positions = parse_positions(settings.positions, len(text_ids), item.where)
        pieces = _pieces(tokenizer, item.text, text_ids, enc.get("offset_mapping"))
        docs.append(Document(item, ids, len(ids) - len(text_ids), pieces, positions))
    return docs


def check_settings(s: ExplainSettings) -> None:
    if s.samples < 1 or s.batch_size < 1:
        raise NLAError("--samples and --batch-size must be at least 1", "pass e.g. --samples 3")
    if not math.isfinite(s.temperature) or s.temperature < 0:
        raise NLAError(f"--temperature {s.temperature} must be >= 0", "pass e.g. 0.7")
    if s.samples > 1 and s.temperature == 0:
        raise NLAError(
            "--samples > 1 with greedy decoding repeats one answer", "add --temperature 1"
        )
    if s.max_new_tokens is not None and s.max_new_tokens < 8:
        raise NLAError("--max-new-tokens must be at least 8", "pass e.g. 96")
    if s.baseline not in ("auto", "teacher", "none"):
        raise NLAError(f"--baseline {s.baseline!r}", "use auto, teacher or none")
    check_device(s.device, "--device")  # torch would say so only once weights move there


# -- the models -------------------------------------------------------------------------------


def _context_size(load_path: str) -> int:
    """The target's context in tokens (0: unknown)."""
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(load_path)
    cfg = getattr(cfg, "text_config", cfg)
    return int(getattr(cfg, "max_position_embeddings", 0) or 0)


def _extractor(ref: NLARef, settings: ExplainSettings, diff_model: str | None):
    """The target (or the diffing pair) with its checks done before any weights load."""
    from nla_variants.config import TargetConfig
    from nla_variants.data.diffing import load_extractor, resolve_diff_model
    from nla_variants.target import check_layer, resolve_model
    from nla_variants.training.finetune import resolve_finetune_spec

    source = resolve_model(ref.target)
    check_layer(ref.layer, source.num_layers, source.spec)
    diff_spec = diff_model and resolve_finetune_spec(diff_model)  # never trains
    if diff_spec:  # resolved here so that a missing one names where it came from
        where = "--diff-model" if settings.diff_model else f"{ref.path}'s target.diff_model"
        resolve_model(diff_spec, where)
    cfg = TargetConfig(
        model=ref.target,
        layer=ref.layer,
        precision=settings.precision,
        device=settings.device,
        diff_model=diff_spec,
    )
    diff = resolve_diff_model(cfg, source)
    return lambda: load_extractor(cfg, diff, source)


def _teacher(nla: NLA, mode: str):
    """The offline teacher behind the text-only baseline, or None."""
    from nla_variants.common.paths import cache_root
    from nla_variants.config import TeacherConfig
    from nla_variants.data.teachers.factory import make_teacher

    spec = dict(nla.teacher or {})
    kind = spec.get("kind")
    if mode == "none" or (mode == "auto" and kind != "heuristic"):
        return None
    if kind is None:
        raise NLAError("this NLA records no teacher", "use --baseline none")
    if kind == "anthropic":
        raise NLAError("the NLA's teacher is the Anthropic API (network)", "use --baseline none")
    seed = int(spec.pop("seed", 0))
    return make_teacher(TeacherConfig.model_validate(spec), seed, cache_root() / "teachers")


def autocast_for(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for a precision setting (auto: bf16 where the device has it)."""
    from nla_variants.target import autocast_context, resolve_precision

    return autocast_context(device, resolve_precision(precision, device))


# -- the work -------------------------------------------------------------------------------------


def _bar(progress: bool, total: int, desc: str, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)


def extract(docs: Sequence[Document], extractor, layer: int, progress: bool) -> torch.Tensor:
    """The residuals at every chosen token of every text: [N, d] fp32."""
    total = sum(len(d.ids) for d in docs)
    with _bar(progress, total, "extract", "tok") as bar:
        out = extractor.residuals(
            [d.ids for d in docs],
            layer,
            [[p + d.offset for p in d.positions] for d in docs],
            on_batch=bar.update,
        )
    return torch.from_numpy(np.concatenate(out)).float()


def verbalize(av, vectors: torch.Tensor, s: ExplainSettings, autocast, progress: bool) -> list[str]:
    """AV generations, `s.samples` consecutive rows per vector, in batches."""
    torch.manual_seed(s.seed)
    texts, _ = generate_all(
        av,
        vectors,
        s.batch_size,
        s.max_new_tokens,
        "explain" if progress else None,
        autocast,
        temperature=s.temperature,
        num_samples=s.samples,
    )
    return texts


def reconstruct(
    ar, explanations: Sequence[str | None], prefixes: Sequence[str], s: ExplainSettings, run
) -> tuple[torch.Tensor, torch.Tensor]:
    """AR predictions [M, d] (zeros where there is no explanation) and the failed mask; `run`
    holds the autocast context, the width and the progress bar."""
    autocast, d, bar = run
    ok = [i for i, e in enumerate(explanations) if e is not None]
    pred = torch.zeros(len(explanations), d)
    for start in range(0, len(ok), s.batch_size):
        rows = ok[start : start + s.batch_size]
        with autocast:
            found = ar_predict(
                ar, [explanations[i] for i in rows], [prefixes[i] for i in rows], s.batch_size
            )
        pred[rows] = found
        bar.update(len(rows))
    bar.update(len(explanations) - len(ok))
    failed = torch.ones(len(explanations), dtype=torch.bool)
    failed[ok] = False
    return pred, failed


@dataclass
class Scores:
    """Per explanation: cosine and FVE against its own vector and against the control's."""

    cos: torch.Tensor
    fve: torch.Tensor | None
    mse: torch.Tensor


def score(
    pred: torch.Tensor, failed: torch.Tensor, targets: torch.Tensor, mean: torch.Tensor | None
) -> Scores:
    """Normalised MSE of each prediction (orthogonal where the extraction failed), as cosine and,
    given the mean training direction, as FVE against the set's predict-the-mean baseline."""
    mse = normalized_mse(pred, targets).masked_fill(failed, ORTHOGONAL_MSE)
    per_fve = None
    if mean is not None:
        per_fve = 1.0 - mse / baseline_mse(targets, mean.float()).mean().clamp_min(1e-12)
    return Scores(1.0 - mse / 2.0, per_fve, mse)


def _floats(values: torch.Tensor | None, rows: slice) -> list[float] | None:
    return None if values is None else [round(float(v), 4) for v in values[rows]]


@dataclass
class Readout:
    """Everything known about the explained tokens, in order (k samples per token)."""

    docs: list[Document]
    vectors: torch.Tensor  # [N, d]
    prefixes: list[str]  # the text so far at each token
    texts: list[str]  # raw generations [N * k]
    explained: list[str | None]  # their explanations (None: failed extraction)
    scores: dict[str, tuple[Scores, torch.Tensor]] = field(default_factory=dict)
    baseline: list[str | None] | None = None  # the teacher's explanation of each prefix
    baseline_source: str | None = None


def explain(
    ref: NLARef, inputs: Sequence[TextInput], s: ExplainSettings, progress: bool = True
) -> ExplainResult:
    """Explain every chosen token of every input with the NLA at `ref` (see the module doc).
    Every input check runs before any weights load; nothing is written here."""

    from nla_variants.artifacts.loading import load
    from nla_variants.target import default_device, load_tokenizer, resolve_model

    check_settings(s)
    clock = [time.perf_counter()]
    source = resolve_model(ref.target)
    tokenizer = load_tokenizer(source.load_path)
    docs = tokenize_inputs(tokenizer, inputs, ref, s, _context_size(source.load_path))
    make_extractor = _extractor(ref, s, s.diff_model or ref.diff_model)
    device = torch.device(s.device) if s.device else default_device()
    nla = load(ref, device)
    log.info("%s NLA %s: %s", ref.kind, ref.path, nla.note or "final weights")
    teacher = _teacher(nla, s.baseline)
    autocast = autocast_for(s.precision, device)

    vectors = extract(docs, make_extractor(), ref.layer, progress)
    clock.append(time.perf_counter())
    texts = verbalize(nla.av, vectors, s, autocast, progress)
    prefixes = [
        tokenizer.decode(d.ids[d.offset : d.offset + p + 1]) for d in docs for p in d.positions
    ]
    out = Readout(docs, vectors, prefixes, texts, [nla.av.extract(t) for t in texts])
    clock.append(time.perf_counter())
    if nla.ar is not None:
        _score_all(nla, out, teacher, s, autocast, progress)
    clock.append(time.perf_counter())

    records = _records(out, s)
    summary = _summary(nla, records, s, out.scores)
    parts = ("extract", "generate", "score")
    summary["wall_s"] = {"total": round(clock[-1] - clock[0], 2)} | {
        name: round(b - a, 2) for name, a, b in zip(parts, clock[:-1], clock[1:], strict=True)
    }
    documents = [
        {
            "index": i,
            "where": d.input.where,
            "id": d.input.id,
            "tokens": d.pieces,
            "token_ids": d.ids[d.offset :],
            "positions": d.positions,
        }
        for i, d in enumerate(docs)
    ]
    return ExplainResult(records, documents, summary)


def _score_all(nla: NLA, out: Readout, teacher, s: ExplainSettings, autocast, progress) -> None:
    """The AR's reconstruction of every explanation scored against its own vector (`real`),
    another token's (`shuffled`), and the teacher's explanation of the prefix (`baseline`)."""
    k, n = s.samples, len(out.vectors)
    own = out.vectors.repeat_interleave(k, 0)
    sources = [p for p in out.prefixes for _ in range(k)]
    with _bar(progress, n * k + (n if teacher else 0), "score", "expl") as bar:
        run = (autocast, nla.d_model, bar)
        pred, failed = reconstruct(nla.ar, out.explained, sources, s, run)
        out.scores["real"] = (score(pred, failed, own, nla.train_mean), own)
        if n > 1:
            shuffled = out.vectors[derangement(n, s.seed)].repeat_interleave(k, 0)
            out.scores["shuffled"] = (score(pred, failed, shuffled, nla.train_mean), shuffled)
        if teacher is not None:
            out.baseline = teacher.explain(out.prefixes)
            rendered = [None if e is None else nla.av.render_target(e) for e in out.baseline]
            bpred, bfailed = reconstruct(nla.ar, rendered, out.prefixes, s, run)
            base = score(bpred, bfailed, out.vectors, nla.train_mean)
            out.scores["baseline"] = (base, out.vectors)
            out.baseline_source = f"teacher:{teacher.name}"


def _records(out: Readout, s: ExplainSettings) -> list[dict[str, Any]]:
    """One JSON-ready record per explained token."""
    k = s.samples
    real, control = out.scores.get("real"), out.scores.get("shuffled")
    base = out.scores.get("baseline")
    records = []
    row = 0
    for i, d in enumerate(out.docs):
        for p in d.positions:
            rows = slice(row * k, (row + 1) * k)
            explained = out.explained[rows]
            record: dict[str, Any] = {
                "text_index": i,
                "text_id": d.input.id,
                "position": p,
                "token": d.pieces[p],
                "token_id": d.ids[d.offset + p],
                "norm": float(f"{float(out.vectors[row].norm()):.6g}"),
                "explanations": explained,
                "raw": [
                    t if e is None else None
                    for t, e in zip(out.texts[rows], explained, strict=True)
                ],
                "quote_rate": [
                    None if e is None else round(quote_rate(e, out.prefixes[row], s.quote_ngram), 4)
                    for e in explained
                ],
            }
            if real is not None:
                record["cos"] = _floats(real[0].cos, rows)
                record["cos_shuffled"] = _floats(control[0].cos, rows) if control else None
                record["fve"] = _floats(real[0].fve, rows)
                record["fve_shuffled"] = _floats(control[0].fve, rows) if control else None
            if base is not None and out.baseline is not None:
                one = slice(row, row + 1)
                record["baseline"] = {
                    "source": out.baseline_source,
                    "explanation": out.baseline[row],
                    "cos": _floats(base[0].cos, one)[0],
                    "fve": (_floats(base[0].fve, one) or [None])[0],
                }
            records.append(record)
            row += 1
    return records


def _means(scores: Scores, targets: torch.Tensor, mean: torch.Tensor | None) -> dict[str, Any]:
    """Set-level cosine and FVE (the evaluation's definition: mean MSE over the baseline's)."""
    fve_set = None if mean is None else fve(scores.mse, baseline_mse(targets, mean.float()))
    return {"cos": float(scores.cos.mean()), "fve": fve_set}


def _summary(nla: NLA, records: list[dict], s: ExplainSettings, scored: dict) -> dict[str, Any]:
    failed = sum(e is None for r in records for e in r["explanations"])
    total = sum(len(r["explanations"]) for r in records)
    quotes = [q for r in records for q in r["quote_rate"] if q is not None]
    out: dict[str, Any] = {
        "nla": str(nla.ref.path),
        "kind": nla.ref.kind,
        "weights": nla.note,
        "target": nla.ref.target,
        "layer": nla.ref.layer,
        "vectors": "diff" if (s.diff_model or nla.ref.diff_model) else "activations",
        "tokens": len(records),
        "samples": s.samples,
        "tag_failure_rate": failed / max(total, 1),
        "quote_rate": sum(quotes) / len(quotes) if quotes else 0.0,
        "score": "fve" if nla.train_mean is not None and nla.ar is not None else "cos",
    }
    for name, (scores, targets) in scored.items():
        out[name] = _means(scores, targets, nla.train_mean)
    return out


def write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """One JSON object per explained token (atomic: nothing half-written)."""
    from nla_variants.common.io import write_text_atomic

    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
