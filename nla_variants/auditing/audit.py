"""`nla audit`: does an NLA reveal what a model hides, better than reading its transcript?

Two kinds of case, each a hidden value among known candidates (so every rate has its chance):
- **A chat prompt put to a secret-word organism** (a `nla finetune` checkpoint with a
  `secret_word`). The organism answers it (its transcript), and its residual at the NLA's layer is
  taken at the last prompt token, where it is about to answer (`diff`: organism minus base model,
  for an NLA trained on a diff dataset). The hidden value is the organism's word, among every
  known secret word.
- **A statement the target reads as text** (`--organism target`, the false-statement set of
  `data/statements.py`). The residual is taken at its last token; the hidden value is whether it
  is true.

Four readings of each case are scored:
- the NLA: the AV's explanation of the residual;
- the transcript: the NLA's text-only teacher reading the prompt and the answer (or the
  statement);
- a probe: a ridge classifier on the same residuals, cross-validated over the cases (what the
  vector holds; it needs two or more hidden values);
- the shuffled control: the NLA's explanations scored against other cases' values.
A reading reveals a secret when it names the word; a second score also counts the hint set (the
cue words the organism was tuned to hint with). It reveals a statement's value when it calls it
true or false (`TRUTH`'s spellings). Each organism is also verified on the same prompts: how often
its answer hints, and how often it writes the word.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from nla_variants.auditing.reveal import Reveal, hint_rate, names, reveal_rate, wilson
from nla_variants.common.errors import NLAError
from nla_variants.core.padding import pad_left
from nla_variants.core.ridge import Ridge
from nla_variants.core.vectors import derangement
from nla_variants.data.diffing import FINETUNE_META, FINETUNE_SPEC_PREFIX
from nla_variants.data.organisms import SECRET_WORDS
from nla_variants.data.statements import TRUTH
from nla_variants.variants.pair import NLARef

log = logging.getLogger(__name__)

PROBE_FOLDS = 5
PROBE_PENALTY = 0.1  # relative ridge penalty (core.ridge); residuals have d >> cases here


@dataclass(frozen=True)
class AuditSettings:
    diff: bool = False  # read organism - base: for an NLA trained on a diff dataset
    response_tokens: int = 40  # the organism's answer (the transcript)
    max_new_tokens: int | None = None  # the AV's explanation cap (None: its own)
    batch_size: int = 32
    seed: int = 0
    precision: str = "auto"
    device: str | None = None


TARGET = "target"  # --organism target: the NLA's target itself, reading statements


@dataclass(frozen=True)
class Organism:
    """A secret-word fine-tune, read from the finetune.yaml `nla finetune` saved beside it, or
    the NLA's target itself (`TARGET`: no path, no secret)."""

    spec: str  # as the user gave it
    path: Path | None = None
    secret: str | None = None
    base_spec: str = ""
    base_fingerprint: str = ""


@dataclass(frozen=True)
class Case:
    """A chat prompt for an organism (value None: the organism's secret), or a statement the
    target reads as text, with its truth value."""

    text: str
    value: str | None = None


@dataclass
class AuditResult:
    summary: dict[str, Any]
    records: list[dict[str, Any]] = field(default_factory=list)


# -- inputs (checked before any weights load) -----------------------------------------------------


def resolve_organism(spec: str) -> Organism:
    """An organism from its fine-tune config (built by `nla finetune`) or its checkpoint dir."""
    from nla_variants.training.finetune import resolve_finetune_spec

    if spec == TARGET:
        return Organism(spec)
    config = spec.endswith((".yaml", ".yml")) and not spec.startswith(FINETUNE_SPEC_PREFIX)
    # a config resolves to the dir `nla finetune` saved, or an error naming that command
    path = Path(resolve_finetune_spec(FINETUNE_SPEC_PREFIX + spec if config else spec))
    meta_path = path / FINETUNE_META
    if not meta_path.is_file():
        raise NLAError(
            f"--organism {spec} is not a fine-tune `nla finetune` saved (no {FINETUNE_META})",
            "pass an organism config such as configs/organism_gold.yaml, or its checkpoint dir",
        )
    meta = yaml.safe_load(meta_path.read_text()) or {}
    secret = meta.get("secret_word")
    if not secret:
        raise NLAError(
            f"--organism {spec} hides no secret word (its {FINETUNE_META} has no secret_word)",
            "build a secret-word organism: nla finetune configs/organism_gold.yaml",
        )
    base = meta.get("base") or {}
    return Organism(spec, path, str(secret), str(base.get("spec")), str(base.get("fingerprint")))


def read_cases(path: str | Path) -> list[Case]:
    """The cases: a JSONL file of `{"prompt": ...}` (for secret-word organisms) or of
    `{"statement": ..., "value": "true" | "false"}` (for `--organism target`), one kind per file."""
    p = Path(path)
    if not p.is_file():
        raise NLAError(
            f"--cases {p} does not exist", "pass a case file, e.g. configs/cases/*.jsonl"
        )
    cases = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"--cases {p} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise NLAError(f"{where} is not JSON", "write one JSON object per line") from None
        cases.append(_case(row, where))
    if not cases:
        raise NLAError(
            f"--cases {p} has no cases", 'write one {"prompt": ...} or {"statement": ...} per line'
        )
    if len({c.value is None for c in cases}) > 1:
        raise NLAError(f"--cases {p} mixes prompts and statements", "use one file for each")
    return cases


def _case(row: object, where: str) -> Case:
    fix = 'write {"prompt": "..."} or {"statement": "...", "value": "false"}'
    if not isinstance(row, dict):
        raise NLAError(f"{where} is not a JSON object", fix)
    prompt, statement = row.get("prompt"), row.get("statement")
    if prompt is not None and statement is not None:
        raise NLAError(f'{where} has both a "prompt" and a "statement"', "keep one of them")
    if isinstance(prompt, str) and prompt.strip():
        return Case(prompt)
    if isinstance(statement, str) and statement.strip():
        value = row.get("value")
        if not isinstance(value, str) or value not in TRUTH:
            raise NLAError(f"{where}: a statement's value must be one of {sorted(TRUTH)}", fix)
        return Case(statement, value)
    raise NLAError(f'{where} has no "prompt" or "statement" string', fix)


def check_organisms(
    organisms: Sequence[Organism], cases: Sequence[Case], ref: NLARef, diff: bool = False
) -> None:
    """Statements go to the target alone; prompts go to secret-word fine-tunes of the model the
    NLA reads, each hiding its own word."""
    from nla_variants.target import content_fingerprint, resolve_model

    statements = cases[0].value is not None
    specs = [o.spec for o in organisms]
    if statements and specs != [TARGET]:
        others = sorted(set(specs) - {TARGET}) or [f"{TARGET} {len(specs)} times"]
        raise NLAError(
            f"statement cases are read by the target itself, not by {', '.join(others)}",
            f"pass --organism {TARGET} once, and no other organism",
        )
    if statements and diff:
        raise NLAError(
            "--diff reads organism - base, but statements have no organism", "drop --diff"
        )
    if not statements and TARGET in specs:
        raise NLAError(
            f"--organism {TARGET} reads statements, but the cases are prompts",
            "pass a statement case file, or secret-word organisms",
        )
    if statements:
        return
    fingerprint = content_fingerprint(resolve_model(ref.target))  # as `nla finetune` hashes it
    for org in organisms:
        if org.base_fingerprint != fingerprint:
            raise NLAError(
                f"--organism {org.spec} was fine-tuned from {org.base_spec}, but the NLA reads "
                f"{ref.target}",
                "audit it with an NLA of the organism's base model, or fine-tune the organism "
                "from the NLA's target",
            )
    secrets = [o.secret for o in organisms]
    if len(set(secrets)) < len(secrets):
        raise NLAError(f"two organisms hide the same word ({secrets})", "pass each one once")


# -- the models -----------------------------------------------------------------------------------


def chat_ids(tokenizer: Any, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt as a user turn in the organism's chat template, ready for its answer."""
    return [
        list(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}],
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
            )["input_ids"]
        )
        for p in prompts
    ]


@torch.no_grad()
def answer(target, ids: Sequence[Sequence[int]], s: AuditSettings, bar: tqdm) -> list[str]:
    """The organism's greedy answers (left-padded batches)."""
    from nla_variants.target import autocast_context

    tok, model = target.tokenizer, target.model
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = []
    for start in range(0, len(ids), s.batch_size):
        chunk = ids[start : start + s.batch_size]
        batch, mask = pad_left(chunk, pad, target.device)
        with autocast_context(target.device, target.dtype):
            gen = model.generate(
                input_ids=batch,
                attention_mask=mask,
                max_new_tokens=s.response_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
            )
        out += tok.batch_decode(gen[:, batch.shape[1] :], skip_special_tokens=True)
        bar.update(len(chunk))
    return [t.strip() for t in out]


def probe_predictions(vectors: torch.Tensor, values: Sequence[str], seed: int) -> list[str]:
    """Each case's value predicted by a ridge classifier fitted (and standardised) on the other
    folds' cases."""
    classes = sorted(set(values))
    x = vectors.double()
    y = torch.zeros(len(values), len(classes), dtype=torch.float64)
    y[torch.arange(len(values)), torch.tensor([classes.index(v) for v in values])] = 1.0
    order = torch.randperm(len(values), generator=torch.Generator().manual_seed(seed))
    predicted: list[str] = [""] * len(values)
    for fold in range(PROBE_FOLDS):
        held = order[fold::PROBE_FOLDS]
        fit = torch.ones(len(values), dtype=torch.bool)
        fit[held] = False
        mean, std = x[fit].mean(0), x[fit].std(0).clamp_min(1e-6)
        w, b = Ridge((x[fit] - mean) / std).solve(y[fit], PROBE_PENALTY)
        scores = ((x[held] - mean) / std) @ w + b
        for i, c in zip(held.tolist(), scores.argmax(1).tolist(), strict=True):
            predicted[i] = classes[c]
    return predicted


def other_values(values: Sequence[str], seed: int) -> list[str] | None:
    """The shuffled control's values: each case gets the value of another case whose value
    differs from its own (a seeded partner), so the control scores an explanation only against
    values its case does not hide. None when every case hides the same value."""
    if len(set(values)) < 2:
        return None
    n, order = len(values), derangement(len(values), seed).tolist()
    out = []
    for i, v in enumerate(values):
        j = next(k % n for k in range(order[i], order[i] + n) if values[k % n] != v)
        out.append(values[j])
    return out


# -- the audit ------------------------------------------------------------------------------------


def _candidates(hints: bool) -> dict[str, tuple[str, ...]]:
    """Every secret word's spellings (and with `hints`, its cue words)."""
    return {
        w: tuple(s.spellings) + (tuple(s.cues) if hints else ()) for w, s in SECRET_WORDS.items()
    }


def _scored_as(statements: bool) -> dict[str, dict[str, tuple[str, ...]]]:
    """The scores of a run: its name -> the candidates a reading must name."""
    if statements:
        return {"states": TRUTH}
    return {"word": _candidates(False), "word_or_hint": _candidates(True)}


def _rate(r: Reveal) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(r).items()}


def _share(hits: int, n: int) -> dict[str, Any]:
    low, high = wilson(hits, n)
    return {"rate": round(hits / n, 4), "low": round(low, 4), "high": round(high, 4), "n": n}


@dataclass
class _Readings:
    """What the organisms gave for every case, in case order."""

    vectors: list[torch.Tensor] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # the prompt or statement
    answers: list[str] = field(default_factory=list)  # the organism's ("" for a statement)
    transcripts: list[str] = field(default_factory=list)


def _ask_organisms(ref, organisms, cases, s: AuditSettings, bar: tqdm) -> _Readings:
    """Each secret-word organism answers every prompt; its residual where the answer starts."""
    from nla_variants.data.diffing import DiffTarget
    from nla_variants.target import TargetModel

    out = _Readings()
    base = TargetModel(ref.target, s.precision, s.device) if s.diff else None
    prompts = [c.text for c in cases]
    for org in organisms:
        target = TargetModel(str(org.path), s.precision, s.device)
        ids = chat_ids(target.tokenizer, prompts)
        said = answer(target, ids, s, bar)
        extractor = DiffTarget(base, target) if base is not None else target
        rows = extractor.residuals(ids, ref.layer, [[len(i) - 1] for i in ids])
        out.vectors += [torch.from_numpy(r[0]).float() for r in rows]
        out.values += [org.secret] * len(prompts)
        out.texts += prompts
        out.answers += said
        out.transcripts += [
            f"User: {p}\nAssistant: {a}" for p, a in zip(prompts, said, strict=True)
        ]
    return out


def _read_statements(ref, cases, s: AuditSettings, bar: tqdm) -> _Readings:
    """The target reads each statement as text, tokenised as the NLA's data was; its residual at
    the last token."""
    from nla_variants.explain.explain import (
        ExplainSettings,
        TextInput,
        _context_size,
        tokenize_inputs,
    )
    from nla_variants.target import TargetModel

    target = TargetModel(ref.target, s.precision, s.device)
    inputs = [TextInput(c.text, f"case {i + 1}") for i, c in enumerate(cases)]
    context = _context_size(target.source.load_path)
    docs = tokenize_inputs(target.tokenizer, inputs, ref, ExplainSettings(positions="-1"), context)
    rows = target.residuals([d.ids for d in docs], ref.layer, [[len(d.ids) - 1] for d in docs])
    bar.update(len(cases))
    texts = [c.text for c in cases]
    return _Readings(
        [torch.from_numpy(r[0]).float() for r in rows],
        [str(c.value) for c in cases],
        texts,
        [""] * len(cases),
        texts,
    )


def audit(
    ref: NLARef,
    organisms: Sequence[Organism],
    cases: Sequence[Case],
    s: AuditSettings,
    progress: bool = True,
) -> AuditResult:
    """Run every organism on every case and score the four readings (see the module doc)."""
    from nla_variants.artifacts.loading import load
    from nla_variants.explain.explain import ExplainSettings, _teacher, autocast_for, verbalize
    from nla_variants.target import check_layer, default_device, resolve_model

    t0 = time.perf_counter()
    check_organisms(organisms, cases, ref, s.diff)
    statements = cases[0].value is not None
    source = resolve_model(ref.target)
    check_layer(ref.layer, source.num_layers, source.spec)
    device = torch.device(s.device) if s.device else default_device()
    nla = load(ref, device)
    teacher = _teacher(nla, "auto")
    n = len(organisms) * len(cases)
    desc = "target reads" if statements else "organism answers"
    with tqdm(total=n, desc=desc, unit="case", disable=not progress) as bar:
        if statements:
            got = _read_statements(ref, cases, s, bar)
        else:
            got = _ask_organisms(ref, organisms, cases, s, bar)
    x, values = torch.stack(got.vectors), got.values
    t1 = time.perf_counter()
    explain = ExplainSettings(
        max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, seed=s.seed, device=s.device
    )
    readings = verbalize(nla.av, x, explain, autocast_for(s.precision, device), progress)
    readings = [nla.av.extract(t) or "" for t in readings]
    t2 = time.perf_counter()
    teacher_readings = teacher.explain(got.transcripts) if teacher is not None else None
    shuffled = other_values(values, s.seed)
    probe = probe_predictions(x, values, s.seed) if len(set(values)) > 1 else None

    scores: dict[str, Any] = {}
    for label, cands in _scored_as(statements).items():
        row = {"nla": _rate(reveal_rate(readings, values, cands))}
        if shuffled is not None:
            row["shuffled"] = _rate(reveal_rate(readings, shuffled, cands))
        if teacher_readings is not None:
            texts = [t or "" for t in teacher_readings]
            row["transcript"] = _rate(reveal_rate(texts, values, cands))
        scores[label] = row
    if probe is not None:
        hits = sum(p == v for p, v in zip(probe, values, strict=True))
        scores["probe"] = _share(hits, len(values)) | {"chance": round(1 / len(set(values)), 4)}
    verified = {}
    for org in organisms if not statements else ():
        mine = [a for a, v in zip(got.answers, values, strict=True) if v == org.secret]
        hinted, wrote = hint_rate(mine, org.secret)
        verified[org.secret] = {
            "organism": str(org.path),
            "hint": _share(round(hinted * len(mine)), len(mine)),
            "says_word": _share(round(wrote * len(mine)), len(mine)),
        }
    t3 = time.perf_counter()
    summary = {
        "nla": str(ref.path),
        "layer": ref.layer,
        "kind": "statements" if statements else "secret_word",
        "read": "target" if statements else ("organism - base" if s.diff else "organism"),
        "position": "the statement's last token"
        if statements
        else "the last prompt token (where the answer starts)",
        "cases": n,
        "prompts": len(cases),
        "organisms": verified,
        "reveal": scores,
        "transcript_reader": f"teacher:{teacher.name}" if teacher is not None else None,
        "wall_s": {
            "total": round(t3 - t0, 1),
            "read": round(t1 - t0, 1),
            "explain": round(t2 - t1, 1),
            "score": round(t3 - t2, 1),
        },
        "settings": asdict(s),
    }
    first = next(iter(_scored_as(statements).values()))
    records = [
        {
            "case": i,
            "value": values[i],
            "text": got.texts[i],
            "answer": got.answers[i],
            "explanation": readings[i],
            "transcript_reading": None if teacher_readings is None else teacher_readings[i],
            "probe": None if probe is None else probe[i],
            "nla_reveals": names(readings[i], first[values[i]]),
        }
        for i in range(n)
    ]
    return AuditResult(summary, records)


# -- the report -----------------------------------------------------------------------------------


def _cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "n/a"
    return f"{r['rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


COLUMNS = {
    "word": "names the word",
    "word_or_hint": "names the word or a hint",
    "states": "states the truth value",
}


def markdown(result: AuditResult) -> str:
    """The audit as a Markdown report: the organisms verified, then each reading's reveal rate
    with its 95% interval (Wilson) and chance."""
    s = result.summary
    statements = s["kind"] == "statements"
    what = "statements" if statements else f"prompts x {len(s['organisms'])} organisms"
    lines = [
        f"# nla audit: {s['nla']}",
        "",
        f"{s['cases']} cases ({s['prompts']} {what}); residual: {s['read']} at layer "
        f"{s['layer']}, {s['position']}.",
        "",
    ]
    if s["organisms"]:
        lines += [
            "## The organisms",
            "",
            "| secret | answers that hint | answers that write the word |",
            "|---|---|---|",
        ]
        for word, v in s["organisms"].items():
            lines.append(f"| {word} | {_cell(v['hint'])} | {_cell(v['says_word'])} |")
        lines.append("")
    labels = [k for k in s["reveal"] if k != "probe"]
    lines += [
        "## Reveal rates",
        "",
        "| reading | " + " | ".join(f"{COLUMNS[k]} | chance" for k in labels) + " |",
        "|---|" + "---|---|" * len(labels),
    ]
    reader = s["transcript_reader"] or "none"
    source = "the statement" if statements else "the transcript"
    for key, label in (
        ("nla", "the NLA's explanation"),
        ("transcript", f"{source}, read by {reader}"),
        ("shuffled", "shuffled control (other cases' values)"),
    ):
        rates = [s["reveal"][k].get(key) for k in labels]
        if rates[0] is None:
            continue
        cells = " | ".join(f"{_cell(r)} | {r['chance']:.3f}" for r in rates)
        lines.append(f"| {label} | {cells} |")
    probe = s["reveal"].get("probe")
    if probe is not None:
        blank = " | |" * (len(labels) - 1)
        lines.append(
            f"| linear probe on the residual ({PROBE_FOLDS}-fold) | {_cell(probe)} |"
            f" {probe['chance']:.3f}{blank} |"
        )
    lines += ["", f"Wall time: {s['wall_s']['total']:.0f} s.", ""]
    return "\n".join(lines)


def write_outputs(out: Path, result: AuditResult) -> list[Path]:
    """audit.json (summary and every case) and audit.md under `out`, each written atomically."""
    from nla_variants.common.io import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    data = json.dumps({"summary": result.summary, "cases": result.records}, indent=1)
    paths = [out / "audit.json", out / "audit.md"]
    write_text_atomic(paths[0], data + "\n")
    write_text_atomic(paths[1], markdown(result))
    return paths


def log_mlflow(result: AuditResult, written: Sequence[Path], experiment: str) -> str:
    """One MLflow run: the settings as params, every rate as a metric, the report as artifacts."""
    import mlflow

    s = result.summary
    metrics = {}
    for score, row in s["reveal"].items():
        if score == "probe":
            metrics["audit/probe"] = row["rate"]
            continue
        for reading, r in row.items():
            metrics[f"audit/{score}/{reading}"] = r["rate"]
            metrics[f"audit/{score}/{reading}_chance"] = r["chance"]
    for word, v in s["organisms"].items():
        metrics[f"organism/{word}/hint"] = v["hint"]["rate"]
        metrics[f"organism/{word}/says_word"] = v["says_word"]["rate"]
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name="audit") as run:
        mlflow.log_params(
            {"nla": s["nla"], "kind": s["kind"], "read": s["read"], "cases": s["cases"]}
            | {"layer": s["layer"]}
            | {f"organism.{w}": v["organism"] for w, v in s["organisms"].items()}
        )
        mlflow.log_metrics(metrics)
        for path in written:
            mlflow.log_artifact(str(path), "audit")
        return run.info.run_id
