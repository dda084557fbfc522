"""The perturbation battery's rewrites: each changes form and keeps what the faithfulness readers
read (nla_variants/evaluation/perturbations.py)."""

from __future__ import annotations

import pytest

from nla_variants.config import CorpusConfig
from nla_variants.data.corpus import load_corpus
from nla_variants.data.teachers.heuristic import HeuristicTeacher
from nla_variants.evaluation.faithfulness import stated
from nla_variants.evaluation.perturbations import (
    PERTURBATIONS,
    drop_literals,
    reorder_lines,
    teacher_synonyms,
)


@pytest.fixture(scope="module")
def explanations() -> list[str]:
    docs = load_corpus(CorpusConfig(max_documents=200))
    teacher = HeuristicTeacher(0)
    return [teacher.explain_one(d.text[:cut]) for d in docs[::4] for cut in (60, 200, 500)]


def test_lines_reordered_keep_every_line():
    assert reorder_lines("a\nb\n\nc") == "c\nb\na"
    assert reorder_lines("one line") == "one line"


def test_numbers_and_quoted_spans_are_dropped_and_the_rest_kept():
    text = 'Mid-sentence after "in 2019 were"; 45% of 1,200 voters\nA `code` span and it\'s fine'
    assert drop_literals(text) == "Mid-sentence after; of voters\nA span and it's fine"


def test_teacher_synonyms_say_the_same_genre_and_token_in_other_words(explanations):
    changed = [teacher_synonyms(e) != e for e in explanations]
    assert sum(changed) >= 0.9 * len(explanations)  # nearly every explanation is reworded
    for e in explanations:
        s = teacher_synonyms(e)
        assert stated("genre", s) == stated("genre", e), (e, s)
        assert stated("token", s) == stated("token", e), (e, s)
        assert len(s.splitlines()) == len(e.splitlines())


def test_slots_are_carried_into_the_other_phrasing():
    line = (
        "An unclosed call to Bar: the remaining arguments and the closing parenthesis must follow"
    )
    swapped = teacher_synonyms(line)
    assert swapped != line and "Bar" in swapped


def test_a_text_outside_the_phrase_book_is_left_alone():
    text = '{"genre": "code", "token": "x"}'
    assert teacher_synonyms(text) == text
    assert set(PERTURBATIONS) == {
        "lines reordered",
        "teacher synonyms",
        "numbers and quotes dropped",
    }
