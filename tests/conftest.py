"""Shared fixtures: a tiny randomly initialised model of the target's architecture (with the
embedded model's real tokenizer)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded model, converted once into $NLA_CACHE_DIR (~20 s the first time)."""
    from nla_variants.target import resolve_model

    return Path(resolve_model("embedded").load_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 4-block Llama with SmolLM2's config shape scaled down, random weights, real tokenizer
    (built by the public `nla_variants.testing.make_tiny_model`)."""
    from nla_variants.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tokenizer=embedded_dir)


def write_corpus(path: Path, n_docs: int) -> Path:
    from nla_variants.testing import write_tiny_corpus

    return write_tiny_corpus(path, n_docs, max_words=90)
