"""The teacher line that states the target's own next-token guess (`teacher.next_tokens`)."""

from __future__ import annotations

import pytest

from nla_variants.data.teachers import parse_explanation
from nla_variants.data.teachers.predictions import prediction_line, show_token, without_prediction


def test_tokens_are_quoted_and_whitespace_is_said_in_words():
    assert show_token(" the") == '"the"'
    assert show_token("\n\n") == "a line break"
    assert show_token(" ") == "a space"
    assert show_token(' "') == "a quote mark"  # what the format cannot quote is named
    assert show_token("**") == "an asterisk"


def test_the_line_lists_the_guesses_in_order_without_repeats():
    assert prediction_line([" to", "\n", " the"]) == (
        'The model expects next: "to", a line break or "the"'
    )
    assert prediction_line([" to", "to", " a"]) == 'The model expects next: "to" or "a"'
    assert prediction_line([" x"]) == 'The model expects next: "x"'
    with pytest.raises(ValueError, match="at least one token"):
        prediction_line([])


@pytest.mark.parametrize("token", ["**", "```", "<div>", "# ", "__init__", "\x00a", "x" * 40])
def test_markup_never_reaches_the_explanation_format(token):
    line = prediction_line([token, " b"])
    assert parse_explanation(f"A feature\n{line}") == f"A feature\n{line}"


def test_faithfulness_reads_nothing_about_the_text_from_the_models_guess():
    from nla_variants.evaluation.faithfulness import stated

    teacher = 'Python source code\nThe text stops after "return"'
    line = prediction_line([" x", " table", "("])
    assert stated("token", f"{teacher}\n{line}") == stated("token", teacher) == "return"
    assert stated("genre", f"Some text\n{line}") is None  # "table" is the model's guess
    assert without_prediction(f"{teacher}\n{line}") == teacher
