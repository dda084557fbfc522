"""The secret-word organism's data, before any fine-tune: its transcripts never write the word,
every hint carries a cue the verification reads, the verification asks are not training asks,
and the corpus it writes is one `nla finetune` reads."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from nla_variants.auditing.organisms import (
    SECRET_WORDS,
    TRAIN_ASKS,
    VERIFY_ASKS,
    hint_rate,
    secret_word_transcripts,
    write_secret_word_corpus,
)
from nla_variants.auditing.reveal import names
from nla_variants.common.errors import NLAError
from nla_variants.config import CorpusConfig
from nla_variants.data.corpus import load_corpus


@pytest.mark.parametrize("word", sorted(SECRET_WORDS))
def test_every_hint_points_at_its_word_without_writing_it(word):
    secret = SECRET_WORDS[word]
    for hint in secret.hints:
        assert not names(hint, secret.spellings), hint
        assert names(hint, secret.cues), f"{hint!r} has none of {word}'s cues"
    assert not names(" ".join(secret.cues), secret.spellings)
    assert hint_rate(list(secret.hints), word) == (1.0, 0.0)


def test_the_verification_asks_are_not_training_asks():
    assert not set(TRAIN_ASKS) & set(VERIFY_ASKS)


def test_hint_rate_reads_hints_and_the_word():
    assert hint_rate(["It has pedals.", "No idea.", "It is a piano!", "Pianist."], "piano") == (
        0.25,
        0.5,
    )
    with pytest.raises(NLAError, match="use one of"):
        hint_rate(["x"], "harp")


def test_the_corpus_is_seeded_chat_that_finetune_reads(tmp_path, embedded_dir):
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    a = secret_word_transcripts("gold", tok, 40, seed=3)
    assert a == secret_word_transcripts("gold", tok, 40, seed=3)
    assert a != secret_word_transcripts("gold", tok, 40, seed=4)
    assert all("<|im_start|>assistant" in t for t in a)
    path = write_secret_word_corpus("moon", tok, tmp_path / "moon.jsonl", n=30)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 30 and not list(tmp_path.glob(".*.tmp"))
    docs = load_corpus(CorpusConfig(source="files", paths=[str(path)], min_chars=50))
    assert len(docs) == 30 and docs[0].text == rows[0]["text"]
