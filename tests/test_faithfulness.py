"""Faithfulness: ground-truth properties, the explanation matchers, the probes, and the honesty of
the metric (an AV that writes another row's teacher explanation scores at chance; one that
copies its own row's scores at the teacher's level)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
import torch

from nla_variants.core.text import wrap_explanation
from nla_variants.core.vectors import derangement
from nla_variants.data.properties import (
    BY_NAME,
    FLAG,
    PROPERTIES,
    PropertyTable,
    property_columns,
    structure,
)
from nla_variants.evaluation import faithfulness as F

# -- ground truth from the text -----------------------------------------------------------------

CASES = [
    # (prefix, genre, next token, expected subset)
    ('x = f("abc', "code", "def", {"in_string": True, "open_bracket": True, "mid_word": True}),
    ('x = f("a")\n', "code", "y", {"in_string": False, "open_bracket": False, "line_start": True}),
    ('def f():\n    """Doc', "code", " text", {"in_string": True, "mid_word": False}),
    ("# don't stop\nvalue = [1,", "code", " 2", {"in_string": False, "open_bracket": True}),
    ("Intro.\n```python\nprint('hi", "technical", "!", {"in_code_block": True, "in_string": True}),
    ("Intro.\n```python\nx = 1\n```\nAfter", "technical", " that", {"in_code_block": False}),
    ('He said, "Come', "narrative", " here", {"in_quote": True, "mid_sentence": True}),
    ('He said, "Come."', "narrative", " She", {"in_quote": False, "mid_sentence": False}),
    ("(an aside\n\nNew text", "expository", " here", {"open_bracket": False}),
    ("We met (at noon", "expository", ")", {"open_bracket": True, "mid_word": False}),
    ("Shopping:\n- eggs and", "expository", " milk", {"in_list_item": True}),
    ("Steps:\n3.", "expository", " Mix", {"in_list_item": True, "mid_sentence": False}),
    ("Shopping:\n- eggs\n", "expository", "-", {"in_list_item": False, "line_start": True}),
    ("The bott", "narrative", "le", {"mid_word": True, "mid_sentence": True}),
    ("The bottle", "narrative", " was", {"mid_word": False}),
    ("He met Mr.", "narrative", " Smith", {"mid_sentence": True}),
    ("He left.", "narrative", " She", {"mid_sentence": False, "line_start": False}),
    ("Hello.\n  ", "expository", "World", {"line_start": True, "mid_sentence": False}),
    ('{"name": "Al', "structured", "ice", {"in_string": True, "in_quote": False}),
    ('{"name": "Al"', "structured", ",", {"in_string": False, "open_bracket": True}),
    ("a,b,c\n1,2", "structured", ",", {"mid_sentence": None, "in_quote": False}),
    ("The end", "narrative", None, {"mid_word": False}),
]


@pytest.mark.parametrize(("prefix", "genre", "nxt", "want"), CASES)
def test_structure_follows_the_documented_rules(prefix, genre, nxt, want):
    got = structure(prefix, genre, nxt)
    assert {k: got[k] for k in want} == want


def test_property_columns_cover_every_stored_property():
    cols = property_columns(["The bott"], ["narrative"], ["bott"], ["le"], tuned_genre="code")
    assert cols["token"] == ["bott"] and cols["next_token"] == ["le"]
    assert cols["mid_word"] == [True] and cols["tuned_genre"] == ["code"]


# -- reading explanations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("genre", "A story told in narrative prose about code", "narrative"),
        ("genre", "Technical documentation about a story", "technical"),
        ("genre", "A chat or conversation transcript", "dialogue"),
        ("genre", "Records of labelled fields", "structured"),
        ("genre", "Some words with no kind named", None),
        ("token", 'Genre line "ignored"\nMid-sentence after "A layer of"; a noun', "A layer of"),
        ("token", 'A quote "here" on the first line\nNo quotes on the last', None),
        ("next_token", "Turn ended; the next speaker tag follows, likely BIANCA", "BIANCA"),
        ("next_token", 'The last word "x" is likely complete', None),
        ("next_token", 'A comma ends a field; "email" comes next', "email"),
        ("mid_word", 'Cut inside the word "D", which the next token completes', True),
        ("mid_word", 'The word "Voyage" is complete; the phrase goes on', False),
        ("mid_word", "Mid-word, though the word is complete", None),  # both: silent
        ("mid_sentence", 'Mid-sentence after "the"; a noun phrase has to come next', True),
        ("mid_sentence", 'A sentence just ended after "home"; a new sentence starts', False),
        ("in_string", "Inside an open string literal; it must be closed", True),
        ("in_string", "A string closed long ago", None),
        ("in_quote", "Inside an open double quote: the clause continues", True),
        ("in_quote", "A quotation just closed with a comma after x", None),
        ("in_list_item", "Inside a list item: the clause continues", True),
        ("in_list_item", 'A list item ending "eggs" is done; item 4 follows', None),
        ("open_bracket", "The argument list of print is still open", True),
        ("open_bracket", "A bracketed expression just closed", None),
        ("line_start", 'A paragraph just ended after "home"; a new paragraph begins', True),
        ("line_start", "A block header just ended with a colon, so a new line comes next", None),
        ("in_code_block", "Inside a fenced code example within the documentation", True),
    ],
)
def test_matchers_read_what_an_explanation_states(name, text, value):
    assert F.stated(name, text) == value


def test_tokens_match_on_word_characters_only():
    assert F.matches("token", "A layer OF", " of")
    assert not F.matches("token", "of course", " of")
    assert F.matches("next_token", "BIANCA", " BI")
    assert not F.defined("token", ",") and not F.defined("next_token", "\n")
    assert F.defined("token", " the")


def test_flags_score_recall_on_positives_and_false_alarms_on_negatives():
    truths = [True, True, False, False, False, False]
    said = [True, None, True, None, None, None]
    s = F.score("in_quote", truths, said)
    assert (s.faithful, s.contradict, s.n) == (0.5, 0.25, 2)
    assert F.score("in_quote", [False] * 3, [None] * 3) is None  # no positive: undefined
    labels = F.score("genre", ["code", "code", "narrative", None], ["code", None, "code", "x"])
    assert (labels.faithful, labels.contradict, labels.n) == (1 / 3, 1 / 3, 3)


# -- the honesty of the metric ------------------------------------------------------------------

_PIECE = re.compile(r"\n+|[ \t]*\w+|[ \t]*[^\w\s]|[ \t]+")  # a word-level stand-in for a tokenizer


@pytest.fixture(scope="module")
def corpus_rows():
    """~600 rows of the builtin corpus cut at token-like boundaries, with their properties and
    the heuristic teacher's explanations (what a warm-started AV learns to write)."""
    from nla_variants.config import CorpusConfig
    from nla_variants.data.corpus import load_corpus
    from nla_variants.data.teachers.heuristic import HeuristicTeacher

    docs = load_corpus(CorpusConfig(source="builtin", max_documents=300), 0)
    rng = np.random.default_rng(0)
    prefixes, genres, tokens, nexts = [], [], [], []
    for doc in docs:
        pieces = _PIECE.findall(doc.text[:1500])
        if len(pieces) < 12:
            continue
        for cut in rng.choice(np.arange(4, len(pieces) - 1), size=2, replace=False):
            prefixes.append("".join(pieces[:cut]))
            genres.append(doc.genre)
            tokens.append(pieces[cut - 1])
            nexts.append(pieces[cut])
    values = {"genre": genres, **property_columns(prefixes, genres, tokens, nexts)}
    ids = [f"row{i}" for i in range(len(prefixes))]
    return PropertyTable(ids, values, False), HeuristicTeacher(0).explain(prefixes)


# The properties the heuristic teacher states; next_token and mid_word it does not (or not well).
STATED = ("genre", "token", "in_string", "in_quote", "in_list_item", "open_bracket", "mid_sentence")
STATED += ("line_start",)


def chance(name: str, truths: list, said: list) -> tuple[float, float]:
    """The exact expected (faithful, contradict) of explanations that are independent of their
    row: the average over every pair of distinct rows (i's truth, j's statement)."""
    rows = [i for i, t in enumerate(truths) if F.defined(name, t)]
    counts = Counter(s for s in said if s is not None)
    stated, others = sum(counts.values()), len(said) - 1
    hit, miss = [], []
    for i in rows:
        t, own = truths[i], said[i]
        if BY_NAME[name].kind == FLAG:
            share = (counts[True] - (own is True)) / others
            (hit if t else miss).append(share)
            continue
        right = sum(c for v, c in counts.items() if F.matches(name, v, t))
        right -= own is not None and F.matches(name, own, t)
        hit.append(right / others)
        miss.append((stated - (own is not None) - right) / others)
    return float(np.mean(hit)), float(np.mean(miss))


def honest(name: str, truths: list, teacher: list, fake_other: list) -> bool:
    """The done-when check: the teacher clearly above chance, another row's teacher explanation
    at chance on both scores (within 4 standard errors; a flag's false alarms are over its
    negatives, many more rows than n)."""
    said = [F.stated(name, t) for t in teacher]
    own = F.score(name, truths, said)
    other = F.score(name, truths, [F.stated(name, t) for t in fake_other])
    base, base_wrong = chance(name, truths, said)

    def near(value: float, expected: float) -> bool:
        return abs(value - expected) < 4 * np.sqrt(max(expected * (1 - expected), 0.01) / own.n)

    return (
        own.faithful - base > 0.2
        and near(other.faithful, base)
        and near(other.contradict, base_wrong)
    )


def test_a_fake_av_writing_another_rows_teacher_text_scores_at_chance(corpus_rows):
    table, teacher = corpus_rows
    other = [teacher[i] for i in derangement(len(teacher), 1).tolist()]
    for name in STATED:
        truths = table.values[name]
        assert sum(bool(t) for t in truths if t is not None) >= 12, name  # enough to judge
        assert honest(name, truths, teacher, other), name


def test_a_matcher_that_reads_anything_as_the_truth_fails_the_honesty_check(
    corpus_rows, monkeypatch
):
    table, teacher = corpus_rows
    other = [teacher[i] for i in derangement(len(teacher), 1).tolist()]
    monkeypatch.setattr(F, "matches", lambda name, said, truth: True)
    monkeypatch.setattr(F, "stated", lambda name, text: True)
    for name in ("genre", "token", "line_start"):
        assert not honest(name, table.values[name], teacher, other), name


# -- through the evaluation ---------------------------------------------------------------------


class LookupAV(torch.nn.Module):
    """A fake AV: finds which row a vector is and writes explanation `texts[source[row]]`."""

    def __init__(self, vectors: torch.Tensor, texts: list, source: list[int]) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.vectors, self.texts, self.source = vectors, texts, source

    def generate(self, vectors, max_new_tokens=96, temperature=1.0, num_samples=1, seeds=None):
        rows = torch.cdist(vectors.float(), self.vectors).argmin(1).tolist()
        return [wrap_explanation(self.texts[self.source[r]]) for r in rows], [[1]] * len(rows)

    def extract(self, text):
        from nla_variants.core.text import extract_explanation

        return extract_explanation(text)

    def render_target(self, text):
        return text

    def encode_responses(self, explanations):
        return [[1]] * len(explanations)

    def response_logprobs(self, vectors, responses):
        return torch.zeros(len(responses), 1), torch.ones(len(responses), 1)


def _ar(explanations, prefixes):
    return torch.ones(len(explanations), 24)


def _vectors(table: PropertyTable, encode: bool, seed: int = 0) -> np.ndarray:
    """Synthetic activations: the genre (one-hot through a random map) plus noise, or noise."""
    g = np.random.default_rng(seed)
    genres = sorted({v for v in table.values["genre"]})
    onehot = np.eye(len(genres))[[genres.index(v) for v in table.values["genre"]]]
    noise = g.normal(size=(len(table), 24))
    signal = onehot @ g.normal(size=(len(genres), 24)) * 3.0 if encode else 0.0
    return (noise + signal).astype(np.float32)


def _split(table: PropertyTable, teacher: list, seed: int = 0):
    """Half the rows to fit probes on, half to evaluate (drawn at random: the builtin corpus
    comes in genre order)."""
    order = np.random.default_rng(seed).permutation(len(table))
    train, held = order[: len(order) // 2], order[len(order) // 2 :]
    ids = table.example_ids
    return (
        (table.take([ids[i] for i in train]), train),
        (table.take([ids[i] for i in held]), held, [teacher[i] for i in held]),
    )


@pytest.mark.parametrize("encode", [True, False])
def test_evaluate_reports_av_probe_teacher_and_chance_side_by_side(corpus_rows, encode):
    from nla_variants.data.store import SplitRows
    from nla_variants.evaluation.evaluation import evaluate

    table, teacher = corpus_rows
    vectors = _vectors(table, encode)
    (train, fit_rows), (held, eval_rows, texts) = _split(table, teacher)
    probes, standardise = F.fit_probes(vectors[fit_rows], train, ["genre", "line_start"])
    faith = F.Faithfulness(held, probes, standardise)
    rows = SplitRows(vectors[eval_rows], texts, [""] * len(held), held.example_ids)
    n = len(held)
    v = torch.from_numpy(rows.vectors)
    own = LookupAV(v, rows.explanations, list(range(n)))
    other = LookupAV(v, rows.explanations, derangement(n, 7).tolist())
    kw = {"max_samples": n, "max_new_tokens": 8, "batch_size": 64, "faithfulness": faith}
    m_own, _, per_row = evaluate(own, _ar, rows, torch.ones(24), **kw)
    m_other, *_ = evaluate(other, _ar, rows, torch.ones(24), **kw)
    record = per_row.table().to_pydict()
    assert record["genre"] == held.values["genre"]
    for key in ("faithful", "contradict"):  # each property's share is the mean of its row flags
        for name in STATED:
            flags = [f for f in record.get(f"{key}_{name}", []) if f is not None]
            if f"{key}_{name}" in m_own:
                assert np.mean(flags) == pytest.approx(m_own[f"{key}_{name}"]), (key, name)
    for name in STATED:
        truths = held.values[name]
        if F.score(name, truths, truths) is None:  # a flag with no positive in this half
            continue
        assert m_own[f"faithful_{name}"] == m_own[f"faithful_{name}_teacher"], name
        assert m_own[f"contradict_{name}"] == m_own[f"contradict_{name}_teacher"], name
        base, _ = chance(name, truths, [F.stated(name, t) for t in rows.explanations])
        tol = 4 * np.sqrt(max(base * (1 - base), 0.01) / m_own[f"faithful_{name}_n"]) + 0.01
        assert abs(m_other[f"faithful_{name}"] - base) < tol, name
        assert abs(m_own[f"faithful_{name}_shuffled"] - base) < tol, name  # the chance reading
    assert m_own["faithful_genre"] - m_other["faithful_genre"] > 0.3
    assert m_other["contradict_genre"] - m_own["contradict_genre"] > 0.3
    majority = max(held.values["genre"].count(g) for g in set(held.values["genre"])) / n
    if encode:  # the vector holds the genre: the probe reads it
        assert m_own["probe_genre"] > 0.9 and m_own["faithful_genre_probe"] > 0.9
    else:  # noise: the probe is at chance
        assert m_own["probe_genre"] < majority + 0.1
        assert abs(m_own["probe_line_start"] - 0.5) < 0.15  # balanced accuracy
    assert "faithful_mean" in m_own and "contradict_mean" in m_own
    rows_table = F.table_rows({f"eval/{k}": v for k, v in m_own.items()}, "eval/")
    genre = next(r for r in rows_table if r["property"] == "genre")
    assert genre["av_faithful"] == m_own["faithful_genre"]
    assert genre["probe_accuracy"] == m_own["probe_genre"]


def test_a_constant_property_gets_no_probe():
    values = {p.name: [None] * 40 for p in PROPERTIES}
    values["tuned_genre"] = ["narrative"] * 40
    values["line_start"] = [i % 2 == 0 for i in range(40)]
    table = PropertyTable([str(i) for i in range(40)], values, False)
    x = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32)
    probes, _ = F.fit_probes(x, table, ["tuned_genre", "line_start"])
    assert set(probes) == {"line_start"}


# -- stored columns, and datasets written before them -------------------------------------------


def test_prepare_stores_properties_and_older_datasets_get_the_same_on_demand(
    tmp_path, tiny_model_dir, write_config
):
    import pyarrow.parquet as pq
    import yaml

    from nla_variants.config import PrepareConfig, load_config
    from nla_variants.data.prepare import prepare
    from nla_variants.data.properties import PROPERTIES_VERSION, STORED, load_properties
    from nla_variants.data.store import SIDECAR, StoredDataset
    from nla_variants.training.data import load_split

    cfg = load_config(write_config(tmp_path, tiny_model_dir), PrepareConfig)
    path = prepare(cfg, progress=False).path
    ds = StoredDataset.open(path)
    assert ds.sidecar["properties"] == {"version": PROPERTIES_VERSION, "columns": list(STORED)}
    now = load_properties(ds)
    assert not now.computed and len(now) == ds.sidecar["counts"]["rows"]
    assert set(now.present()) >= {"genre", "token", "next_token", "mid_word", "mid_sentence"}

    # the same dataset as an older version wrote it: no property columns, no sidecar entry
    for shard in ds.shards:
        table = pq.read_table(shard)
        pq.write_table(table.drop_columns(list(STORED)), shard)
    side = dict(ds.sidecar)
    side.pop("properties")
    (path / SIDECAR).write_text(yaml.safe_dump(side))
    old = StoredDataset.open(path)
    assert len(load_split(old, "eval")) == old.sidecar["splits"]["eval"]["rows"]
    again = load_properties(old)
    assert again.computed and again.example_ids == now.example_ids
    for name in ("genre", *STORED):
        assert again.values[name] == now.values[name], name
    assert prepare(cfg, progress=False).cache_hit  # the content address did not move


# -- sweeps and the comparison table ------------------------------------------------------------


def test_faithfulness_metrics_are_sweep_objectives_and_compare_columns(tmp_path):
    import optuna

    from nla_variants.sweeps.report import metric_names, to_markdown
    from nla_variants.sweeps.report import rows as report_rows
    from nla_variants.sweeps.spec import Objective

    assert Objective(metric="eval/contradict_mean", direction="minimize")
    assert Objective(metric="eval/faithful_genre").metric == "eval/faithful_genre"
    study = optuna.create_study(study_name="f", storage=f"sqlite:///{tmp_path / 'o.db'}")
    study.set_user_attr("report", ["eval/roundtrip_fve"])
    per_seed = {
        "0": {
            "eval/roundtrip_fve": 0.3,
            "eval/faithful_genre": 0.8,
            "eval/contradict_genre": 0.1,
            "eval/faithful_genre_teacher": 0.9,
            "eval/faithful_genre_n": 256.0,
            "eval/faithful_token": 0.7,
            "eval/contradict_token": 0.2,
        }
    }
    dist = {"x": optuna.distributions.CategoricalDistribution(["a"])}
    study.add_trial(
        optuna.trial.create_trial(
            params={"x": "a"}, distributions=dist, value=0.3, user_attrs={"seed_metrics": per_seed}
        )
    )
    names = metric_names(study)
    assert names == [
        "eval/roundtrip_fve",
        "eval/faithful_genre",
        "eval/contradict_genre",
        "eval/faithful_token",
        "eval/contradict_token",
    ]
    assert "| 0.800 | 0.100 |" in to_markdown(report_rows(study), names)
