"""Faithfulness: does an explanation state what is true of its activation, and how often does it
state something false?

Round-trip FVE says the AR can rebuild the vector from the text, not that the text is true. Every
row has known ground truth (`nla_variants.data.properties`), so each property is read three ways:

- **in the vector**: a linear probe (ridge, on the centred and standardised vectors of the
  training splits) scored on the eval rows: the upper bound of what an explanation could state;
- **in the explanation**: `stated(property, text)` reads the value an explanation states (or
  None: silent), with one documented matcher per property (`docs/evaluation.md`);
- **baselines**: the same reading of the teacher's explanations of the same rows, of a text-only
  explanation written now by the offline heuristic teacher (where the dataset's own teacher is
  another one), and of the AV's explanations of other rows' vectors (the chance level).

Scores (every reader, every property; `_n` the rows scored):
- label and binary properties: `faithful_P` = share of rows whose explanation states the true
  value, `contradict_P` = share that states another value (the rest are silent);
- flags (rare states explanations assert but never deny): `faithful_P` = share of the rows in that
  state whose explanation asserts it (recall), `contradict_P` = share of the rows not in that
  state whose explanation asserts it (the false-alarm rate).
A reader that states values at random scores the same on both sides of a flag, and
sum_v P(true = v) P(stated = v) on a label: the shuffled reading measures exactly that.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nla_variants.core.ridge import Ridge
from nla_variants.data.properties import BY_NAME, FLAG, PROPERTIES, PropertyTable
from nla_variants.data.teachers.predictions import without_prediction

# -- reading an explanation -------------------------------------------------------------------


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


# Genre: the label whose cue comes first (explanations name the kind of text first).
GENRE_CUES: dict[str, re.Pattern[str]] = {
    "narrative": _rx(r"\bnarrat\w*", r"\bstor(?:y|ies|ytelling)\b", r"\bfiction", r"\bnovel\b"),
    "dialogue": _rx(
        r"\bdialog\w*",
        r"\bconversation\w*",
        r"\bchat\b",
        r"\btranscript",
        r"\bspeaker turns\b",
        r"\bquestion and answer\b",
        r"\binterview\w*",
    ),
    "expository": _rx(
        r"\bexpository\b",
        r"\binformational\b",
        r"\bexplanatory\b",
        r"\bnon-?fiction\b",
        r"\barticle\b",
        r"\bnews\b",
        r"\bfactual\b",
        r"\bencyclop\w*",
    ),
    "technical": _rx(
        r"\btechnical\b",
        r"\bdocumentation\b",
        r"\bmanual\b",
        r"\bapi\b",
        r"\binstallation\b",
        r"\bset-?up instructions\b",
        r"\bhow-to\b",
    ),
    "code": _rx(r"\bsource code\b", r"\bpython\b", r"\bprogram\b", r"\bcode\b"),
    "structured": _rx(
        r"\bstructured\b",
        r"\btables?\b",
        r"\btabular\b",
        r"\bcsv\b",
        r"\bjson\b",
        r"\brecords?\b",
        r"\bitemi[sz]ed\b",
        r"\blist of\b",
        r"\brecipe\b",
        r"\bkey-value\b",
        r"\blabell?ed fields\b",
        r"\bdelimited\b",
    ),
}

# Binary properties: cues for each value; both or neither found: silent.
BINARY_CUES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "mid_word": (
        _rx(
            r"\bmid-(?:word|identifier)\b",
            r"\b(?:cut )?inside the word\b",
            r"\blooks unfinished\b",
            r"\bmay be (?:partial|unfinished)\b",
            r"\b(?:word|name|identifier) (?:must|has to) be completed\b",
            r"\b(?:partial|unfinished|incomplete) (?:word|identifier)\b",
            r"\bremaining letters\b",
        ),
        _rx(
            r"\bis (?:likely )?complete\b",
            r"\bwhole word\b",
            r"\band a space\b",
            r"\bafter a space\b",
        ),
    ),
    "mid_sentence": (
        _rx(
            r"\bmid-sentence\b",
            r"\b(?:sentence|clause) (?:continues|goes on|resumes)\b",
            r"\bclause is unfinished\b",
            r"\b(?:unfinished|incomplete) (?:sentence|clause)\b",
            r"\bsentence is (?:unfinished|incomplete|not finished)\b",
            r"\bclause (?:comes next|follows)\b",
            r"\bphrase goes on\b",
            # what the grammar needs next: only said of an unfinished sentence
            r"\b(?:noun phrase|noun or adjective|noun it introduces|verb phrase|to-phrase)\b",
            r"\b(?:needs its object|subject's verb|verb must follow|infinitive verb)\b",
            r"\b(?:coordinated phrase|modified verb|reported speech)\b",
        ),
        _rx(
            r"\bsentence (?:just )?(?:ended|ends|finished)\b",
            r"\bends the sentence\b",
            r"\bfull stop\b",
            r"\bsentence boundary\b",
            r"\bnew (?:capitali[sz]ed )?sentence (?:starts|begins|follows)\b",
            r"\bquestion (?:just )?ended\b",
            r"\bquestion mark\b",
            r'\b(?:question|sentence ending) "[^"\n]*" is complete\b',
            r"\bparagraph (?:just )?ended\b",
            r"\bparagraph break\b",
        ),
    ),
}

# Flags: cues that assert the state.
FLAG_CUES: dict[str, re.Pattern[str]] = {
    "in_code_block": _rx(
        r"\bcode (?:block|fence)\b",
        r"\bfenced code\b",
        r"\bcode (?:sample|example)\b[^.;\n]*\b(?:is )?open\b",
    ),
    "in_string": _rx(
        r"\bstring literal\b",
        r"\bdocstring\b",
        r"\btriple-quoted string\b",
        r"\bopen string\b",
        r"\bstring is (?:unfinished|still open|open)\b",
        r"\b(?:in|inside|within) (?:an? |the )?(?:open |unclosed )?string\b",
        r"\bstring (?:text )?continues\b",
        r"\bstring value just opened\b",
    ),
    "in_quote": _rx(
        r"\b(?:inside|within) an? (?:open|unclosed) (?:double|single) quote\b",
        r"\bwithin unclosed (?:quoted speech|a quotation)\b",
        r"\b(?:double|single) quote is still open\b",
        r"\bopening (?:double|single) quote\b",
        r"\b(?:quote|quotation) just opened\b",
        r"\bfirst words of a quotation\b",
        r"\bquoted (?:speech starts|words begin)\b",
        r"\b(?:inside|within) (?:a |the )?(?:quotation|quoted speech)\b",
    ),
    "in_list_item": _rx(
        r"\b(?:inside|within|in) a list item\b",
        r"\blist item marker\b",
        r"\blist marker starts\b",
        r"\bitem text (?:follows|comes next)\b",
        r"\bitem ends at the line break\b",
        r"\bnumbered list marker\b",
        r"\blist number\b",
    ),
    "open_bracket": _rx(
        r"\b(?:an |the )?(?:open|unclosed) (?:parenthesis|square bracket|curly brace|bracket|call)\b",
        r"\bargument list of \S+ is (?:still )?open\b",
        r"\b(?:parenthesis|square bracket|curly brace|bracket) (?:must still be closed|is unclosed"
        r"|just (?:started|opened)|opened)\b",
        r"\bopening (?:parenthesis|square bracket|curly brace|bracket)\b",
        r"\bjust opened an? (?:parenthesis|square bracket|curly brace)\b",
        r"\bparenthetical content begins\b",
    ),
    "line_start": _rx(
        r"\b(?:paragraph|table row|record|field line|turn|statement|opener line|(?<!header )line)"
        r" (?:just )?ended\b",
        r"\bend of a (?:[\w-]+ )?(?:row|record|list line|record line)\b",
        r"\bline break (?:after|follows)\b",
        r"^\s*line break\b",
        r"\bparagraph break\b",
        r"\bblank line\b",
        r"\bstart of a new line\b",
        r"\bnew line after\b",
        r"\bthe new line must\b",
        r"\brow is complete\b",
        r'\bthe line "[^"\n]*" is complete\b',
        r"\bis done\b",
        r"\bheading-like line\b",
        r"\bcontinues on the next line\b",
    ),
}

_QUOTED = re.compile(r'"([^"\n]*)"|\u201c([^\u201d\n]*)\u201d')
# A named next word: a capitalised name after likely/probably, a quoted word said to come next,
# or an explicit "the next token/word is X".
_NEXT = re.compile(  # case-sensitive: "likely complete" names no word
    r'\b(?:[Ll]ikely|[Pp]robably)\s+"?([A-Z][\w.-]*)'
    r'|"([^"\n]+)"\s*,?\s*(?:comes next|follows)\b'
    r'|\b[Nn]ext (?:token|word) (?:is|will be|should be) "?([^"\s,;]+)'
)
_NON_WORD = re.compile(r"\W+")


def key(text: str | None) -> str:
    """What the token matchers compare: lower-cased word characters only."""
    return _NON_WORD.sub("", text or "").casefold().replace("_", "")


def _genre(text: str) -> str | None:
    first = [(m.start(), g) for g, rx in GENRE_CUES.items() if (m := rx.search(text))]
    return min(first)[1] if first else None


def _token(text: str) -> str | None:
    """The last quoted span of the last line (where the end of the text is described)."""
    spans = [a or b for a, b in _QUOTED.findall(text.strip().rsplit("\n", 1)[-1])]
    return spans[-1] if spans else None


def _next_token(text: str) -> str | None:
    m = _NEXT.search(text)
    return next(g for g in m.groups() if g) if m else None


def stated(name: str, text: str | None) -> Any:
    """The value `text` states for property `name`, or None when it is silent. Tokens come back
    as the quoted or named text (compared by `matches`); binary properties as True/False; flags
    as True (asserted) or None. A line naming the model's own guess (`teacher.next_tokens`) is
    about the model, not the text: no property is read from it."""
    text = without_prediction(text) if text else text
    if not text:
        return None
    if name in ("genre", "tuned_genre"):
        return _genre(text)
    if name == "token":
        return _token(text)
    if name == "next_token":
        return _next_token(text)
    if name in BINARY_CUES:
        yes, no = (bool(rx.search(text)) for rx in BINARY_CUES[name])
        return yes if yes != no else None
    if name in FLAG_CUES:
        return True if FLAG_CUES[name].search(text) else None
    raise KeyError(name)


def matches(name: str, said: Any, truth: Any) -> bool:
    """Is the stated value the true one? The current token is matched when the quoted text ends
    with it, the next token when the named word starts with it (case and punctuation ignored)."""
    if name == "token":
        return key(said).endswith(key(truth))
    if name == "next_token":
        return key(said).startswith(key(truth))
    return said == truth


def defined(name: str, truth: Any) -> bool:
    """Rows a property is scored on: a known value, and for tokens one with word characters
    (punctuation and whitespace tokens cannot be told apart in quoted text)."""
    if truth is None:
        return False
    return bool(key(truth)) if name in ("token", "next_token") else True


@dataclass(frozen=True)
class Score:
    faithful: float
    contradict: float
    n: int  # rows the faithful share is over


def score(name: str, truths: Sequence[Any], said: Sequence[Any]) -> Score | None:
    """Faithful and contradiction shares of stated values against the truth (see the module
    docstring); None when no row can be scored (e.g. a flag that never holds here)."""
    rows = [(t, s) for t, s in zip(truths, said, strict=True) if defined(name, t)]
    if BY_NAME[name].kind == FLAG:
        return _flag_score([t for t, _ in rows], [s is True for _, s in rows])
    if not rows:
        return None
    right = [s is not None and matches(name, s, t) for t, s in rows]
    wrong = [s is not None and not r for (t, s), r in zip(rows, right, strict=True)]
    return Score(float(np.mean(right)), float(np.mean(wrong)), len(rows))


def row_verdicts(
    name: str, truths: Sequence[Any], said: Sequence[Any]
) -> tuple[list[bool | None], list[bool | None]]:
    """Per row, the (faithful, contradict) flags whose means `score` reports: None on rows the
    property is not scored on. A flag is faithful on rows in the state (asserted) and
    contradicts on the rest (asserted anyway)."""
    faithful: list[bool | None] = []
    contradict: list[bool | None] = []
    flag = BY_NAME[name].kind == FLAG
    for t, s in zip(truths, said, strict=True):
        if not defined(name, t):
            faithful.append(None)
            contradict.append(None)
        elif flag:
            faithful.append((s is True) if t else None)
            contradict.append(None if t else (s is True))
        else:
            right = s is not None and matches(name, s, t)
            faithful.append(right)
            contradict.append(s is not None and not right)
    return faithful, contradict


def _flag_score(truths: Sequence[bool], asserted: Sequence[bool]) -> Score | None:
    """Recall on the rows in the state, false alarms on the rest (None without both)."""
    pos = [a for t, a in zip(truths, asserted, strict=True) if t]
    neg = [a for t, a in zip(truths, asserted, strict=True) if not t]
    if not pos or not neg:
        return None
    return Score(float(np.mean(pos)), float(np.mean(neg)), len(pos))


# -- reading the vector: linear probes ----------------------------------------------------------

PENALTIES = (1e-3, 1e-2, 1e-1, 1.0)
MAX_CLASSES = 256  # token probes: the most frequent values; rarer ones cannot be predicted


@dataclass
class Probe:
    """A ridge probe from standardised vectors to one property: one-vs-rest scores over
    `classes` (argmax), or for a flag one score thresholded at `threshold`."""

    name: str
    classes: list[Any]
    weight: torch.Tensor
    bias: torch.Tensor
    threshold: float = 0.5

    def predict(self, x: torch.Tensor) -> list[Any]:
        out = x.double() @ self.weight + self.bias
        if BY_NAME[self.name].kind == FLAG:
            return [bool(v) for v in (out[:, 0] > self.threshold).tolist()]
        return [self.classes[i] for i in out.argmax(1).tolist()]


def _targets(name: str, values: Sequence[Any]) -> tuple[list[Any], torch.Tensor]:
    if BY_NAME[name].kind == FLAG:
        return [True], torch.tensor([[float(bool(v))] for v in values])
    counts = Counter(v for v in values if defined(name, v))
    classes = [v for v, c in counts.most_common(MAX_CLASSES) if c >= 2]
    index = {v: i for i, v in enumerate(classes)}
    y = torch.zeros(len(values), len(classes))
    for r, v in enumerate(values):
        if v in index:
            y[r, index[v]] = 1.0
    return classes, y


def _balanced(truths: Sequence[Any], asserted: Sequence[bool]) -> float:
    """Balanced accuracy of asserting a flag: the mean of recall and 1 - false-alarm rate."""
    rows = [(bool(t), bool(a)) for t, a in zip(truths, asserted, strict=True) if t is not None]
    s = _flag_score([t for t, _ in rows], [a for _, a in rows])
    return 0.5 * (s.faithful + 1.0 - s.contradict) if s else float("nan")


def _accuracy(name: str, truths: Sequence[Any], predicted: Sequence[Any]) -> float:
    """Balanced accuracy for a flag (both states weigh the same), plain accuracy otherwise."""
    if BY_NAME[name].kind == FLAG:
        return _balanced(truths, predicted)
    rows = [(t, p) for t, p in zip(truths, predicted, strict=True) if defined(name, t)]
    return float(np.mean([t == p for t, p in rows])) if rows else float("nan")


def _best_threshold(scores: torch.Tensor, truths: Sequence[Any]) -> float:
    """The cut between the two states that maximises balanced accuracy on held-out rows."""
    s = scores.tolist()
    cuts = sorted(set(np.quantile(s, np.linspace(0.02, 0.98, 49)).tolist()))
    return float(max(cuts, key=lambda c: _nan_low(_balanced(truths, [v > c for v in s]))))


def fit_probes(
    vectors: np.ndarray, table: PropertyTable, names: Sequence[str], seed: int = 0
) -> tuple[dict[str, Probe], tuple[torch.Tensor, torch.Tensor]]:
    """One probe per property on `vectors` [n, d] (raw) and their property values; returns the
    probes and the (mean, std) the vectors are standardised with. The penalty (and a flag's
    threshold) is chosen on a held-out fifth of the rows, then the probe is refit on all."""
    x = torch.from_numpy(np.asarray(vectors, dtype=np.float32)).double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    hold, fit = order[: len(x) // 5], order[len(x) // 5 :]
    part, full = Ridge(x[fit]), Ridge(x)
    probes = {}
    for name in names:
        values = table.values[name]
        classes, y = _targets(name, values)
        if not classes or y.sum(0).min() == 0 or (y.shape[1] == 1 and y.mean() == 1):
            continue  # one value everywhere (e.g. a diff dataset's tuned genre): nothing to read
        truths = [values[i] for i in hold.tolist()]
        tried = {p: _held_out(part, x[hold], y[fit], name, classes, truths, p) for p in PENALTIES}
        penalty = max(PENALTIES, key=lambda p: _nan_low(tried[p][0]))
        w, b = full.solve(y, penalty)
        probes[name] = Probe(name, classes, w, b, tried[penalty][1])
    return probes, (mean, std)


def _held_out(
    part: Ridge,
    x_hold: torch.Tensor,
    y_fit: torch.Tensor,
    name: str,
    classes: list[Any],
    truths: Sequence[Any],
    penalty: float,
) -> tuple[float, float]:
    """(held-out accuracy, a flag's threshold) of the probe fitted on the other rows."""
    w, b = part.solve(y_fit, penalty)
    cut = 0.5
    if BY_NAME[name].kind == FLAG:
        cut = _best_threshold((x_hold @ w + b)[:, 0], truths)
    return _accuracy(name, truths, Probe(name, classes, w, b, cut).predict(x_hold)), cut


def _nan_low(v: float) -> float:
    return -1.0 if math.isnan(v) else v


# -- the evaluation -----------------------------------------------------------------------------


@dataclass
class Faithfulness:
    """What the faithfulness scores need beside the AV's explanations: the eval rows' properties,
    the probes, and the baseline explanations (by example id). Built once per dataset
    (`from_dataset`), used by every evaluation on it."""

    properties: PropertyTable  # eval rows
    probes: dict[str, Probe]
    standardise: tuple[torch.Tensor, torch.Tensor]
    text_only: dict[str, str | None] | None = None  # example id -> text-only explanation

    @classmethod
    def from_dataset(
        cls, dataset, seed: int = 0, max_train_rows: int = 8192, text_only: bool = True
    ) -> Faithfulness:
        """Properties of the eval split, probes fitted on up to `max_train_rows` random rows of
        the training splits (av_sft, ar_sft), and, when the dataset's teacher is not the
        heuristic one (whose eval explanations are already stored), the heuristic teacher's
        text-only explanation of each eval prefix."""
        from nla_variants.data.properties import load_properties

        train = [load_properties(dataset, s) for s in ("av_sft", "ar_sft")]
        table = PropertyTable(
            [e for t in train for e in t.example_ids],
            {k: [v for t in train for v in t.values[k]] for k in train[0].values},
            train[0].computed,
        )
        vectors = dataset.training_vectors()
        g = torch.Generator().manual_seed(seed)
        keep = torch.randperm(len(vectors), generator=g)[:max_train_rows].sort().values.tolist()
        table = table.take([table.example_ids[i] for i in keep])
        evaluation = load_properties(dataset, "eval")
        names = [n for n in evaluation.present() if n in table.present()]
        probes, standardise = fit_probes(vectors[keep], table, names, seed)
        baseline = None
        teacher = dataset.meta.teacher
        if text_only and needs_text_only(teacher.kind, teacher.splits):
            baseline = _heuristic_explanations(dataset, seed)
        return cls(evaluation, probes, standardise, baseline)

    def metrics(
        self,
        example_ids: Sequence[str],
        vectors: torch.Tensor,
        explanations: Sequence[str | None],
        teacher: Sequence[str | None],
        perm: torch.Tensor,
    ) -> dict[str, float]:
        """`faithful_P`, `contradict_P` (the AV), the same with `_teacher`, `_text_only`,
        `_shuffled` (the AV's explanations of row perm[i] read against row i) and `_probe`,
        `probe_P` (accuracy; balanced for a flag) and `faithful_P_n`, for every property the
        rows have; `faithful_mean` / `contradict_mean` over properties (the AV)."""
        truth = self.properties.take(example_ids)
        mean, std = self.standardise
        x = (vectors.double().cpu() - mean) / std
        others = [explanations[i] for i in perm.tolist()]
        readers: dict[str, Callable[[str], list[Any]]] = {
            "": lambda n: [stated(n, e) for e in explanations],
            "_teacher": lambda n: [stated(n, e) for e in teacher],
            "_shuffled": lambda n: [stated(n, e) for e in others],
        }
        if self.text_only is not None:
            texts = [self.text_only.get(e) for e in example_ids]
            readers["_text_only"] = lambda n: [stated(n, e) for e in texts]
        out: dict[str, float] = {}
        own: dict[str, Score] = {}
        faithful, contradict = _KEYS
        for name in truth.present():
            truths = truth.values[name]
            if all(not defined(name, t) for t in truths):
                continue
            for suffix, reader in readers.items():
                if suffix == "_teacher" and not any(teacher):
                    continue
                s = score(name, truths, reader(name))
                if s is None:
                    continue
                out[faithful.format(name, suffix)] = s.faithful
                out[contradict.format(name, suffix)] = s.contradict
                if suffix == "":
                    own[name] = s
                    out[faithful.format(name, "_n")] = float(s.n)
            probe = self.probes.get(name)
            if probe is not None:
                predicted = probe.predict(x)
                flag = BY_NAME[name].kind == FLAG
                s = score(name, truths, [p or None for p in predicted] if flag else predicted)
                if s is not None:
                    out[faithful.format(name, "_probe")] = s.faithful
                    out[contradict.format(name, "_probe")] = s.contradict
                    out[_PROBE.format(name)] = _accuracy(name, truths, predicted)
        if own:
            out[faithful.format("mean", "")] = float(np.mean([s.faithful for s in own.values()]))
            out[contradict.format("mean", "")] = float(
                np.mean([s.contradict for s in own.values()])
            )
        return out

    def row_flags(
        self, example_ids: Sequence[str], explanations: Sequence[str | None]
    ) -> dict[str, list]:
        """Per row: `genre` (the truth, where known) and the AV's `faithful_P` / `contradict_P`
        flags (`row_verdicts`) for every property the rows have: the per-row record behind
        `faithful_P` and `contradict_P` (nla_variants/evaluation/row_scores.py)."""
        truth = self.properties.take(example_ids)
        out: dict[str, list] = {}
        if "genre" in truth.values:
            out["genre"] = list(truth.values["genre"])
        faithful, contradict = _KEYS
        for name in truth.present():
            said = [stated(name, e) for e in explanations]
            yes, no = row_verdicts(name, truth.values[name], said)
            out[faithful.format(name, "")], out[contradict.format(name, "")] = yes, no
        return out


# The names `Faithfulness.metrics` writes (property, reader suffix), and `metric_names` lists.
_KEYS = ("faithful_{}{}", "contradict_{}{}")
_PROBE = "probe_{}"


def metric_names(teacher: bool, text_only: bool) -> list[str]:
    """Every name `Faithfulness.metrics` can return (a property absent from the rows is left
    out then): `teacher`, the eval rows have teacher explanations; `text_only`, the heuristic
    baseline is scored (`needs_text_only`)."""
    readers = [
        r for r in READERS if (r != "_teacher" or teacher) and (r != "_text_only" or text_only)
    ]
    out = [key.format("mean", "") for key in _KEYS]
    for p in PROPERTIES:
        out += [key.format(p.name, r) for r in readers for key in _KEYS]
        out += [_KEYS[0].format(p.name, "_n"), _PROBE.format(p.name)]
    return out


def needs_text_only(teacher_kind: str | None, teacher_splits: Sequence[str]) -> bool:
    """A text-only heuristic baseline adds something unless the stored eval explanations are
    already the heuristic teacher's."""
    return teacher_kind != "heuristic" or "eval" not in teacher_splits


def _heuristic_explanations(dataset, seed: int) -> dict[str, str | None]:
    from nla_variants.data.teachers.heuristic import HeuristicTeacher

    table = dataset.table("eval", ["example_id", "prefix"])
    prefixes = table.column("prefix").to_pylist()
    texts = HeuristicTeacher(seed).explain(prefixes)
    return dict(zip(table.column("example_id").to_pylist(), texts, strict=True))


READERS = ("", "_probe", "_teacher", "_text_only", "_shuffled")


def table_rows(metrics: dict[str, float], prefix: str = "") -> list[dict[str, Any]]:
    """One row per property: probe accuracy, then faithful / contradiction for every reader
    (missing entries are None), from `metrics` (keys optionally under `prefix`, e.g. eval/)."""
    rows = []
    for p in PROPERTIES:
        base = f"{prefix}faithful_{p.name}"
        if base not in metrics and f"{base}_probe" not in metrics:
            continue
        row: dict[str, Any] = {
            "property": p.name,
            "kind": p.kind,
            "n": metrics.get(f"{base}_n"),
            "probe_accuracy": metrics.get(f"{prefix}probe_{p.name}"),
        }
        for r in READERS:
            label = r.lstrip("_") or "av"
            row[f"{label}_faithful"] = metrics.get(f"{base}{r}")
            row[f"{label}_contradict"] = metrics.get(f"{prefix}contradict_{p.name}{r}")
        rows.append(row)
    return rows
