"""The `builtin` corpus source: offline, deterministic, mixed-genre, pretraining-like text.

Why: the pipeline must run with no network and no downloaded data set. Four genres are generated
from template grammars written for this project (narrative, dialogue, expository, structured);
two come from the Python standard library, read at run time from files pinned by hash (source
for `code`, docstrings for `technical`; `installed.py`), topped up with generated snippets and
manuals. Every genre gets at least a sixth of `min_bytes`; each generated genre at
least `GENERATED_MIN_DOCS` distinct documents; the installed genres enough documents that no
genre falls under ~10% of the corpus. The word lists, templates and schemas are package data
(`data/*.yaml`, read once by `grammar.lexicon`); the genre modules keep only the generators.

Determinism: each genre has its own `random.Random` seeded from (version, seed, genre), the pinned
file list is sorted before it is shuffled, and nothing depends on set/dict iteration of unhashed
values, on time, or on what else is installed, so a seed gives the same list on every install of
the pinned Python minor version (or a one-line error naming the file that differs).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from ..documents import GENRES, Document
from .apidocs import make_api_doc
from .dialogue import make_dialogue
from .expository import make_expository
from .installed import PinnedStdlib, code_chunks, docstring_pages
from .narrative import make_narrative
from .snippets import make_code_snippet
from .structured import make_structured

__all__ = ["BUILTIN_VERSION", "GENERATED_MIN_DOCS", "PinnedStdlib", "build_builtin_corpus"]

BUILTIN_VERSION = "2"  # 2: pinned stdlib sources, no installed-package descriptions
GENERATED_MIN_DOCS = 1000
INSTALLED_MIN_DOCS = 600
GENERATED_SHARE = 0.15  # of INSTALLED_MIN_DOCS: code/technical docs that are always generated
MIN_CHARS = 400

Maker = Callable[[random.Random], str]


class _Sink:
    """Collects one genre's documents, numbering ids per source and counting UTF-8 bytes."""

    def __init__(self, genre: str) -> None:
        self.genre = genre
        self.docs: list[Document] = []
        self.bytes = 0
        self._count: dict[str, int] = {}
        self._texts: set[str] = set()

    def add(self, text: str, source: str) -> bool:
        if len(text) < MIN_CHARS or text in self._texts:
            return False
        n = self._count.get(source, 0)
        self._count[source] = n + 1
        self._texts.add(text)
        self.docs.append(
            Document(f"builtin/{self.genre}/{source}/{n:06d}", text, self.genre, source)
        )
        self.bytes += len(text.encode("utf-8"))
        return True

    def done(self, min_docs: int, min_bytes: int) -> bool:
        return len(self.docs) >= min_docs and self.bytes >= min_bytes

    def generate(self, make: Maker, rng: random.Random, min_docs: int, min_bytes: int) -> None:
        """Call `make` until the sink holds min_docs documents and min_bytes bytes."""
        misses = 0
        while not self.done(min_docs, min_bytes):
            if not self.add(make(rng), "generated"):
                misses += 1
                if misses > 1000 + min_docs:
                    raise RuntimeError(f"{self.genre} generator keeps repeating itself")

    def take(
        self, items: Iterator[tuple[str, str]], source: str, enough: Callable[[], bool]
    ) -> None:
        """Add installed texts until `enough()`; the iterator is lazy, so reading stops too."""
        for _, text in items:
            if enough():
                return
            self.add(text, source)


_GENERATED: dict[str, Maker] = {
    "narrative": make_narrative,
    "dialogue": make_dialogue,
    "expository": make_expository,
    "structured": make_structured,
}


def _code(sink: _Sink, rng: random.Random, min_bytes: int, stdlib: PinnedStdlib) -> None:
    n_gen = round(INSTALLED_MIN_DOCS * GENERATED_SHARE)
    sink.generate(make_code_snippet, rng, n_gen, 0)
    enough = lambda: sink.done(INSTALLED_MIN_DOCS, min_bytes)  # noqa: E731
    sink.take(code_chunks(rng, stdlib), "stdlib-source", enough)
    sink.generate(make_code_snippet, rng, INSTALLED_MIN_DOCS, min_bytes)


def _technical(sink: _Sink, rng: random.Random, min_bytes: int, stdlib: PinnedStdlib) -> None:
    n_gen = round(INSTALLED_MIN_DOCS * GENERATED_SHARE)
    sink.generate(make_api_doc, rng, n_gen, 0)
    enough = lambda: sink.done(INSTALLED_MIN_DOCS, min_bytes)  # noqa: E731
    sink.take(docstring_pages(rng, stdlib), "stdlib-docstrings", enough)
    sink.generate(make_api_doc, rng, INSTALLED_MIN_DOCS, min_bytes)


def build_builtin_corpus(
    seed: int = 0, min_bytes: int = 2_000_000, stdlib: PinnedStdlib | None = None
) -> list[Document]:
    """Deterministic: same seed -> identical list, same order, on any install of the pinned
    Python minor version (`stdlib`: the pinned sources, by default this interpreter's).

    Documents come grouped by genre in `GENRES` order; ids are
    `builtin/<genre>/<source>/<index:06d>`, unique within the corpus."""
    stdlib = stdlib or PinnedStdlib()
    stdlib.check_python()
    per_genre = -(-min_bytes // len(GENRES))
    docs: list[Document] = []
    for genre in GENRES:
        rng = random.Random(f"builtin:{BUILTIN_VERSION}:{seed}:{genre}")
        sink = _Sink(genre)
        if genre in _GENERATED:
            sink.generate(_GENERATED[genre], rng, GENERATED_MIN_DOCS, per_genre)
        elif genre == "code":
            _code(sink, rng, per_genre, stdlib)
        elif genre == "technical":
            _technical(sink, rng, per_genre, stdlib)
        else:  # a genre added to GENRES without a builder here
            raise ValueError(f"no builtin builder for genre {genre!r}")
        docs += sink.docs
    return docs
