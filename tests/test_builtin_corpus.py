"""The builtin corpus: deterministic, large enough, all genres, varied starts, real stdlib text, and
hermetic: the same documents whatever else is installed, or one line naming the source that differs."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from nla_variants.common.errors import NLAError
from nla_variants.common.hashing import hash_obj, hash_text
from nla_variants.data.builtin import (
    BUILTIN_VERSION,
    PinnedStdlib,
    build_builtin_corpus,
    dialogue,
    expository,
    narrative,
    structured,
)
from nla_variants.data.builtin.apidocs import make_api_doc
from nla_variants.data.builtin.grammar import Grammar, lexicon, tidy
from nla_variants.data.builtin.pin import pin
from nla_variants.data.builtin.snippets import make_code_snippet
from nla_variants.data.corpus import corpus_sources, manifest_hash
from nla_variants.data.documents import GENRES, Document

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
        assert d.source in ("generated", "stdlib-source", "stdlib-docstrings")


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


def test_technical_mixes_docstrings_and_generated_manuals(corpus: list[Document]) -> None:
    sources = Counter(d.source for d in by_genre(corpus, "technical"))
    assert sources["stdlib-docstrings"] >= 0.5 * sum(sources.values())
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
GENERATED_HASH = "fa01f2586a72ba79f224d6fea033635065709081bc2127e1c6a74478bb265586"


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


# sha256 over the whole seed-0 corpus (ids, texts, genres): generated text and pinned stdlib files
# only, so it is the same on every install of the pinned Python minor version, whatever else is
# installed. A change to a generator, a data file or the stdlib pin must update it on purpose (and
# bump BUILTIN_VERSION, which is part of every dataset address).
CORPUS_HASH = "59e33292ef9a6ed9fb5a1d1190ce3fd2e11f77359cb0e20f33e5d093739331fc"


def test_the_whole_corpus_is_pinned(corpus: list[Document]) -> None:
    assert manifest_hash(corpus) == CORPUS_HASH


ADDRESS = """
import importlib.metadata, json
from nla_variants.config import PrepareConfig, load_config
from nla_variants.data.corpus import load_corpus, manifest_hash
from nla_variants.data.prepare import dataset_address
cfg = load_config("configs/quickstart.yaml", PrepareConfig)
docs = load_corpus(cfg.corpus, cfg.seed)
extra = [d.metadata["Name"] for d in importlib.metadata.distributions()]
address = dataset_address(cfg, "model", "bfloat16", manifest_hash(docs), {"kind": "heuristic"})
print(json.dumps({"address": address, "extra": "nla-corpus-probe" in extra}))
"""


def quickstart_address(env: dict[str, str]) -> dict:
    root = Path(__file__).parents[1]
    done = subprocess.run(
        [sys.executable, "-c", ADDRESS], cwd=root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.integration
def test_an_extra_installed_package_leaves_the_dataset_address_unchanged(tmp_path):
    """The quickstart dataset's address in two environments, the second with one more package
    installed (a distribution whose long description the old corpus would have read)."""
    dist = tmp_path / "site" / "nla_corpus_probe-1.0.dist-info"
    dist.mkdir(parents=True)
    readme = "A package installed beside nla_variants. " * 40
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: nla-corpus-probe\nVersion: 1.0\n\n{readme}\n"
    )
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    root = str(Path(__file__).parents[1])
    extra = {**plain, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), root])}
    a, b = quickstart_address({**plain, "PYTHONPATH": root}), quickstart_address(extra)
    assert not a["extra"] and b["extra"], "the probe package must be visible in one env only"
    assert a["address"] == b["address"]


def fake_stdlib(root: Path, files: dict[str, str]) -> dict:
    """Write `files` under `root`; return a pin of them as they are now."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    digests = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in files}
    return {"python": "{}.{}".format(*sys.version_info[:2]), "files": digests}


SOURCE = '''"""A module."""\n\n\ndef f(x):\n    """Return x, twice over, for the test of the pin."""\n    return 2 * x\n'''


def test_a_pinned_source_that_differs_stops_the_build_in_one_line(tmp_path):
    pins = fake_stdlib(tmp_path, {"mod.py": SOURCE * 20, "pkg/__init__.py": SOURCE * 20})
    (tmp_path / "mod.py").write_text(SOURCE * 20 + "# patched\n")
    with pytest.raises(NLAError, match=r"pinned source .*mod\.py differs on this Python") as e:
        build_builtin_corpus(stdlib=PinnedStdlib(tmp_path, pins))
    assert "\n" not in str(e.value) and "corpus.source: files" in str(e.value)
    (tmp_path / "mod.py").unlink()
    with pytest.raises(NLAError, match=r"pinned source mod\.py is missing"):
        build_builtin_corpus(stdlib=PinnedStdlib(tmp_path, pins))


def test_another_python_minor_version_is_refused_in_one_line(tmp_path):
    pins = {**fake_stdlib(tmp_path, {"mod.py": SOURCE}), "python": "3.10"}
    with pytest.raises(NLAError, match=r"pinned to Python 3\.10's standard library"):
        build_builtin_corpus(stdlib=PinnedStdlib(tmp_path, pins))


def test_the_pin_keeps_only_files_identical_in_every_standard_library(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    text = SOURCE * 20
    fake_stdlib(a, {"same.py": text, "changed.py": text, "only_a.py": text, "t.py": "x"})
    fake_stdlib(b, {"same.py": text, "changed.py": text + "# fix\n", "t.py": "x"})
    assert list(pin([a, b])["files"]) == ["same.py"]  # t.py: too small to be a document


def test_the_shipped_pin_matches_this_python() -> None:
    """Every pinned file is here, unchanged (what makes CI's corpus the developers')."""
    stdlib = PinnedStdlib()
    stdlib.check_python()
    assert len(stdlib.files) >= 250
    for rel in stdlib.files:
        stdlib.read(rel)


def test_the_sidecar_names_the_sources(corpus: list[Document]) -> None:
    record = corpus_sources("builtin", corpus)["builtin"]
    assert (
        record["version"] == BUILTIN_VERSION and record["stdlib_pin"] == PinnedStdlib().fingerprint
    )
    assert sum(record["documents_by_source"].values()) == len(corpus)
    assert set(record["documents_by_source"]) == {"generated", "stdlib-source", "stdlib-docstrings"}
    assert corpus_sources("files", corpus) == {}
