"""The builtin corpus: deterministic, large enough, all genres, varied starts, real installed text."""

from __future__ import annotations

import ast
import random
import re
from collections import Counter

import pytest

from nla_variants.data.builtin import (
    BUILTIN_VERSION,
    build_builtin_corpus,
    dialogue,
    expository,
    narrative,
    structured,
)
from nla_variants.data.builtin.apidocs import make_api_doc
from nla_variants.data.builtin.grammar import Grammar, lexicon, tidy
from nla_variants.data.builtin.installed import stdlib_files
from nla_variants.data.builtin.snippets import make_code_snippet
from nla_variants.data.corpus import manifest_hash
from nla_variants.data.documents import GENRES, Document
from nla_variants.hashing import hash_obj, hash_text

GENERATED_GENRES = ("narrative", "dialogue", "expository", "structured")
ID = re.compile(r"^builtin/([a-z]+)/([a-z-]+)/(\d{6})$")


@pytest.fixture(scope="module")
def corpus() -> list[Document]:
    return build_builtin_corpus()


def by_genre(docs: list[Document], genre: str) -> list[Document]:
    return [d for d in docs if d.genre == genre]


def test_version_is_a_nonempty_string() -> None:
    assert isinstance(BUILTIN_VERSION, str) and BUILTIN_VERSION


def test_deterministic_per_seed(corpus: list[Document]) -> None:
    assert build_builtin_corpus(seed=0) == corpus
    other = build_builtin_corpus(seed=1)
    for genre in GENERATED_GENRES:
        a = {d.text for d in by_genre(corpus, genre)}
        b = {d.text for d in by_genre(other, genre)}
        assert len(a & b) < 0.05 * len(a), genre


def test_size_genres_and_balance(corpus: list[Document]) -> None:
    assert sum(len(d.text.encode("utf-8")) for d in corpus) >= 2_000_000
    counts = Counter(d.genre for d in corpus)
    assert set(counts) == set(GENRES)
    for genre in GENRES:
        assert counts[genre] >= 0.08 * len(corpus), (genre, counts)


def test_min_bytes_is_honoured() -> None:
    docs = build_builtin_corpus(seed=3, min_bytes=4_000_000)
    assert sum(len(d.text.encode("utf-8")) for d in docs) >= 4_000_000
    sizes = Counter()
    for d in docs:
        sizes[d.genre] += len(d.text.encode("utf-8"))
    assert min(sizes.values()) >= 4_000_000 // len(GENRES)


def test_generated_genres_have_1000_distinct_documents(corpus: list[Document]) -> None:
    for genre in GENERATED_GENRES:
        texts = {d.text for d in by_genre(corpus, genre) if d.source == "generated"}
        assert len(texts) >= 1000, genre


def test_doc_ids_unique_and_well_formed(corpus: list[Document]) -> None:
    assert len({d.doc_id for d in corpus}) == len(corpus)
    for d in corpus:
        m = ID.match(d.doc_id)
        assert m, d.doc_id
        assert m.group(1) == d.genre and m.group(2) == d.source
        assert d.source in ("generated", "stdlib-source", "stdlib-docstrings", "package-metadata")


def test_lengths(corpus: list[Document]) -> None:
    lengths = [len(d.text) for d in corpus]
    assert min(lengths) >= 400
    assert sum(300 <= n <= 3000 for n in lengths) >= 0.95 * len(lengths)
    assert max(lengths) <= 6000


def test_documents_do_not_share_openings(corpus: list[Document]) -> None:
    for genre in GENRES:
        docs = by_genre(corpus, genre)
        prefix, count = Counter(d.text[:20] for d in docs).most_common(1)[0]
        assert count < 0.1 * len(docs), (genre, prefix, count)
        if genre in ("narrative", "dialogue", "expository"):
            word, count = Counter(d.text.split(maxsplit=1)[0] for d in docs).most_common(1)[0]
            assert count < 0.3 * len(docs), (genre, word, count)


def test_prose_has_no_unexpanded_slots(corpus: list[Document]) -> None:
    slot = re.compile(r"\{\^?[A-Za-z_]+\}")
    for genre in ("narrative", "dialogue", "expository"):
        for d in by_genre(corpus, genre):
            assert not slot.search(d.text), d.text[:200]
            assert not re.search(r"\S[^\S\n]{2,}\S| [,.;:!?]", d.text), d.text[:200]


@pytest.mark.skipif(not stdlib_files(), reason="this Python install ships no stdlib sources")
def test_code_is_real_stdlib_python(corpus: list[Document]) -> None:
    code = by_genre(corpus, "code")
    stdlib = [d for d in code if d.source == "stdlib-source"]
    assert len(stdlib) >= 0.5 * len(code)
    parsed = 0
    for d in stdlib:
        try:
            ast.parse(d.text)
            parsed += 1
        except SyntaxError:
            pass
    assert parsed >= 50
    assert sum("def " in d.text or "class " in d.text for d in stdlib) >= 0.6 * len(stdlib)


@pytest.mark.skipif(not stdlib_files(), reason="this Python install ships no stdlib sources")
def test_technical_mixes_docstrings_and_package_docs(corpus: list[Document]) -> None:
    sources = Counter(d.source for d in by_genre(corpus, "technical"))
    assert sources["stdlib-docstrings"] >= 100
    assert sources["generated"] >= 1
    # Qualified names head the docstring pages.
    pages = [d.text for d in by_genre(corpus, "technical") if d.source == "stdlib-docstrings"]
    assert sum(bool(re.match(r"^(### `)?(class )?[a-z_][\w.]*", p)) for p in pages) == len(pages)


def test_generated_code_snippets_compile() -> None:
    rng = random.Random(7)
    for _ in range(200):
        compile(make_code_snippet(rng), "<snippet>", "exec")


def test_grammar_bindings_capitals_and_articles() -> None:
    g = Grammar({"animal": ("owl", "fox"), "greeting": ("{^who} saw a {animal}.",)})
    rng = random.Random(0)
    out = tidy(g("{greeting}", rng, {"who": "ada"}))
    assert out in ("Ada saw an owl.", "Ada saw a fox.")
    assert tidy("a apple , a unicorn and a hour") == "an apple, a unicorn and an hour"


# sha256 over the four generated genres of the seed-0 corpus and 100 generated code and API
# documents: text that comes from the word lists, templates and generators alone, so it is the same
# on every Python install. A change to any of them must update this on purpose (and bump
# BUILTIN_VERSION, which is part of every dataset address).
GENERATED_HASH = "c719751e04a9f1c0aa045fac267b5b1f387bfd33d5bed1f4db5d90ab1ef57097"


def test_generated_text_is_unchanged(corpus: list[Document]) -> None:
    docs = [d for d in corpus if d.genre in GENERATED_GENRES]
    rng = random.Random(5)
    more = [make_code_snippet(rng) for _ in range(50)] + [make_api_doc(rng) for _ in range(50)]
    assert hash_obj([manifest_hash(docs), [hash_text(t, 32) for t in more]]) == GENERATED_HASH


def test_data_files_load_once_as_tuples() -> None:
    assert lexicon("vocab") is lexicon("vocab")  # cached: read once per process
    for name in ("vocab", "narrative", "dialogue", "expository", "structured", "apidocs"):
        data = lexicon(name)
        assert data and all(not isinstance(v, list) for v in data.values()), name


def test_data_templates_use_only_defined_slots() -> None:
    # Every {slot} in the data files is a grammar rule or a binding the generator sets.
    pron = ["he", "He", "his", "His", "him", "self", "name", "surname", "Name"]
    n = lexicon("narrative")
    themes = n["themes"]
    keys = ("openings", "intro", "scenes", "memories", "talks", "reflections", "titles")
    tpl = [t for k in keys for t in n[k]]
    tpl += [t for th in themes for k in ("trouble", "develop", "turn", "end") for t in th[k]]
    tpl += [t for th in themes for alts in th["bind"].values() for t in alts]
    bound = [*pron, *("f" + p for p in pron), "town", *(k for th in themes for k in th["bind"])]
    narrative.GRAMMAR.check(tpl, bound)

    d = lexicon("dialogue")
    tpl = [t for topic in d["topics"] for v in topic.values() for s in v for t in s.split("||")]
    tpl += [t for s in d["interview_qa"] for t in s.split("||")] + list(d["intro_lines"])
    dialogue.GRAMMAR.check(tpl, ["who", "occupation"])

    e = lexicon("expository")
    tpl = [t for kind in e["news_kinds"] for k, v in kind.items() if k != "say" for t in v]
    tpl += [*e["news_quotes"], *e["news_close"], *(t for v in e["entry"].values() for t in v)]
    tpl += [t for report in e["reports"] for part in report[:2] for t in part]
    bound = ["say", "say2", "storm_kind_cap", "animal_pl_cap", "feature", "feature2"]
    expository.GRAMMAR.check(tpl, bound)


def test_structured_value_templates_use_only_known_specs() -> None:
    # Every {spec} of a value template in data/structured.yaml is a value spec or a binding.
    d = lexicon("structured")
    tpl = [*d["templates"].values(), *(v for kind in d["records"] for _, v in kind)]
    tpl += [*d["title_extras"], *d["route_note"], *d["inventory_head"], d["route_head"]]
    bind = {"place": "Shed", "place_lower": "shed", "first": "A", "last": "B"}
    rng = random.Random(0)
    for t in tpl:
        assert "{" not in structured._fill(t, rng, **bind), t
    for schema in d["schemas"].values():
        for spec in schema.values():
            structured._field(spec)(rng)


def test_package_docs_leave_out_this_packages_own_readme() -> None:
    """The corpus reads installed packages' descriptions; this package's own README changes with
    every edit (and every reinstall), so it must never become corpus text."""
    import random

    from nla_variants.data.builtin.installed import OWN_DISTRIBUTION, package_docs

    names = {name.lower().replace("_", "-") for name, _ in package_docs(random.Random(0), 1)}
    assert names, "no installed package description was read"
    assert OWN_DISTRIBUTION not in names
