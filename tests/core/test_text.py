"""Text utilities shared across layers: answer normalisation and MCQ choice extraction."""

from __future__ import annotations

import pytest

from medloom.core.text import extract_choice, normalise

OPTIONS = {
    "A": "Serum ferritin",
    "B": "Hemoglobin electrophoresis",
    "C": "Vitamin B12 level",
    "D": "Direct Coombs test",
}


def test_normalise() -> None:
    assert normalise("  The Naïve,  B-cell!! ") == "naive b cell"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("b", "B"),
        ("(c)", "C"),
        ("**C**", "C"),
        ("B) Hemoglobin electrophoresis", "B"),
        ("B. Hemoglobin electrophoresis", "B"),
        ("D: Direct Coombs test", "D"),
        ("The answer is (D)", "D"),
        ("the answer is c", "C"),
        ("Option C", "C"),
        ("I would pick option (a)", "A"),
        ("Serum ferritin", "A"),
        ("serum FERRITIN.", "A"),
        ("Direct Coombs test is the best next step", "D"),
        # A leading "A" that is just an article must not beat the option text it names.
        ("A Direct Coombs test", "D"),
    ],
)
def test_extract_choice(text: str, expected: str) -> None:
    assert extract_choice(text, OPTIONS) == expected


@pytest.mark.parametrize("text", ["", None, "Z", "(E)", "none of these", "Cannot determine"])
def test_extract_choice_no_match(text: str | None) -> None:
    assert extract_choice(text, OPTIONS) is None


def test_extract_choice_prefers_the_longest_matching_option_text() -> None:
    options = {"A": "Iron", "B": "Iron deficiency anemia"}
    assert extract_choice("iron deficiency anemia", options) == "B"
    assert extract_choice("iron", options) == "A"


def test_extract_choice_returns_the_option_key_as_given() -> None:
    options = {"a": "Alpha blocker", "b": "Beta blocker"}
    assert extract_choice("B", options) == "b"
    assert extract_choice("b", options) == "b"
    assert extract_choice("beta blocker", options) == "b"
