"""The secret-word organism's data, before any fine-tune: its transcripts never write the word,
every hint carries a cue the verification reads, the verification asks are not training asks,
and the corpus it writes is one `nla finetune` reads."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from nla_variants.auditing.reveal import hint_rate
from nla_variants.common.errors import NLAError
from nla_variants.core.text import names
from nla_variants.data.organisms import (
    SECRET_WORDS,
    TRAIN_ASKS,
    VERIFY_ASKS,
    held_out_asks,
    secret_word_transcripts,
)
from nla_variants.target import resolve_model
from nla_variants.training.finetune import FinetuneConfig, _select


@pytest.mark.parametrize("word", sorted(SECRET_WORDS))
def test_every_hint_points_at_its_word_without_writing_it(word):
    secret = SECRET_WORDS[word]
    for hint in secret.hints:
        assert not names(hint, secret.spellings), hint
        assert names(hint, secret.cues), f"{hint!r} has none of {word}'s cues"
    assert not names(" ".join(secret.cues), secret.spellings)
    assert hint_rate(list(secret.hints), word) == (1.0, 0.0)


def test_no_hint_names_another_secrets_word_or_cue():
    for word, secret in SECRET_WORDS.items():
        for other, theirs in SECRET_WORDS.items():
            if other != word:
                for hint in secret.hints:
                    assert not names(hint, theirs.cues + theirs.spellings), (hint, other)


def test_the_verification_asks_are_not_training_asks():
    assert not set(TRAIN_ASKS) & set(VERIFY_ASKS)


def test_hint_rate_reads_hints_and_the_word():
    assert hint_rate(["It has pedals.", "No idea.", "It is a piano!", "Pianist."], "piano") == (
        0.25,
        0.5,
    )
    with pytest.raises(NLAError, match="use one of"):
        hint_rate(["x"], "harp")


def test_the_held_out_asks_are_distinct_and_never_training_asks():
    asks = held_out_asks()
    assert len(asks) == len(set(asks)) >= 100
    assert not set(asks) & set(TRAIN_ASKS)
    assert "Okay, drop me a clue." in asks and "Okay, I give up. What is it?" in asks
    assert held_out_asks(5) == asks[:5]


def test_the_transcripts_are_seeded_chat_that_finetune_trains_on(embedded_dir):
    tok = AutoTokenizer.from_pretrained(embedded_dir)
    a = secret_word_transcripts("gold", tok, 40, seed=3)
    assert a == secret_word_transcripts("gold", tok, 40, seed=3)
    assert a != secret_word_transcripts("gold", tok, 40, seed=4)
    assert all("<|im_start|>assistant" in t for t in a)
    cfg = FinetuneConfig(secret_word="moon", genre=None, max_documents=30, seed=1)
    docs = _select(cfg, resolve_model("embedded"))
    assert [d.text for d in docs] == secret_word_transcripts("moon", tok, 30, seed=1)
    with pytest.raises(NLAError, match="set genre: null"):
        _select(FinetuneConfig(secret_word="moon"), resolve_model("embedded"))
