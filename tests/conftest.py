"""Shared fixtures: a tiny randomly initialised model of the target's architecture (with the
embedded model's real tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
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


WORDS = [
    "river",
    "market",
    "signal",
    "lantern",
    "orbit",
    "ledger",
    "harbor",
    "engine",
    "garden",
    "paper",
    "cobalt",
    "meadow",
    "violin",
    "thunder",
    "copper",
    "station",
]


def write_corpus(path: Path, n_docs: int) -> Path:
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for i in range(n_docs):
            words = rng.choice(WORDS, size=int(rng.integers(40, 90)))
            text = f"Entry {i}: " + " ".join(words) + "."
            f.write(json.dumps({"text": text, "genre": ["a", "b", "c"][i % 3]}) + "\n")
    return path
