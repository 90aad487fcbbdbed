"""Parsing model output: steps, final answers, MCQ choices and embedded JSON objects."""

from __future__ import annotations

import pytest

from medloom.agents.parsing import (
    parse_answer,
    parse_json_object,
    parse_reasoning,
    parse_steps,
)

OPTIONS = {
    "A": "Serum ferritin",
    "B": "Hemoglobin electrophoresis",
    "C": "Vitamin B12 level",
    "D": "Direct Coombs test",
}


def _indexed(steps):
    return [(s.index, s.text) for s in steps]


# -- steps ----------------------------------------------------------------------------------


def test_steps_plain_with_answer_line() -> None:
    text = (
        "Step 1: Fatigue and a low MCV describe a microcytic anemia.\n"
        "Step 2: Heavy periods point to iron loss.\n"
        "Step 3: A low ferritin confirms iron deficiency.\n"
        "Answer: A"
    )
    assert _indexed(parse_steps(text)) == [
        (1, "Fatigue and a low MCV describe a microcytic anemia."),
        (2, "Heavy periods point to iron loss."),
        (3, "A low ferritin confirms iron deficiency."),
    ]


def test_steps_markdown_bold_and_other_separators() -> None:
    text = (
        "**Step 1:** Microcytic anemia.\n"
        "**Step 2**: Iron deficiency is likely.\n"
        "Step 3) Ferritin confirms it.\n"
        "step 4 - Treat with iron.\n"
        "**Answer:** A"
    )
    assert _indexed(parse_steps(text)) == [
        (1, "Microcytic anemia."),
        (2, "Iron deficiency is likely."),
        (3, "Ferritin confirms it."),
        (4, "Treat with iron."),
    ]


def test_steps_continuation_lines_join_the_previous_step() -> None:
    text = (
        "Let me think.\n"  # text before the first step is ignored
        "Step 1: The anemia is microcytic,\n"
        "   which narrows the causes.\n"
        "\n"
        "Step 2: Menorrhagia means blood loss.\n"
        "Answer: A\n"
        "Step 3: ignored, after the answer line"
    )
    assert _indexed(parse_steps(text)) == [
        (1, "The anemia is microcytic, which narrows the causes."),
        (2, "Menorrhagia means blood loss."),
    ]


def test_steps_keep_the_numbers_as_written() -> None:
    steps = parse_steps("Step 1: first thing\nStep 3: skipped two\nAnswer: B")
    assert [s.index for s in steps] == [1, 3]


def test_steps_stop_at_a_prose_answer_line() -> None:
    text = "Step 1: Microcytic anemia.\nStep 2: Iron deficiency.\nTherefore, the answer is (A)."
    steps = parse_steps(text)
    assert _indexed(steps) == [(1, "Microcytic anemia."), (2, "Iron deficiency.")]


def test_no_steps() -> None:
    assert parse_steps("I think it is ferritin.\nAnswer: A") == []


# -- answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Step 1: x\nAnswer: B", "B"),
        ("Step 1: x\n**Answer:** **C**", "**C**"),
        ("Step 1: x\nFinal answer: D) Direct Coombs test", "D) Direct Coombs test"),
        ("Step 1: x\nAnswer: B\nAnswer: C", "C"),  # the last answer line wins
        ("Step 1: x\nThe answer is (C).", "(C)"),
        ("So the final answer is: B. Because...", "B"),
        ("Step 1: no conclusion yet", None),
        ("", None),
    ],
)
def test_parse_answer(text: str, expected: str | None) -> None:
    assert parse_answer(text) == expected


def test_reasoning_with_options_gives_a_letter() -> None:
    text = "**Step 1:** Microcytic anemia.\n**Step 2:** Iron loss.\n**Answer:** A) Serum ferritin"
    steps, answer, error = parse_reasoning(text, OPTIONS)
    assert [s.index for s in steps] == [1, 2]
    assert answer == "A"
    assert error is None


def test_reasoning_the_answer_is_phrase() -> None:
    text = "Step 1: Low MCV.\nStep 2: Menorrhagia causes iron loss.\nThe answer is (C)."
    steps, answer, error = parse_reasoning(text, OPTIONS)
    assert answer == "C"
    assert error is None
    assert steps[-1].text == "Menorrhagia causes iron loss."


def test_reasoning_answer_given_as_option_text() -> None:
    _, answer, error = parse_reasoning("Step 1: x y z\nAnswer: Direct Coombs test", OPTIONS)
    assert (answer, error) == ("D", None)


def test_reasoning_bare_letter_on_the_last_line() -> None:
    _, answer, error = parse_reasoning("Step 1: Iron deficiency is likely.\n(B)", OPTIONS)
    assert (answer, error) == ("B", None)


def test_reasoning_lowercase_letter() -> None:
    _, answer, error = parse_reasoning("Step 1: Iron deficiency is likely.\nAnswer: b", OPTIONS)
    assert (answer, error) == ("B", None)


def test_reasoning_missing_answer_is_a_parse_error() -> None:
    text = "Step 1: The anemia is microcytic.\nStep 2: The most likely cause is"
    steps, answer, error = parse_reasoning(text, OPTIONS)
    assert len(steps) == 2
    assert answer is None
    assert error is not None and "no final answer" in error


def test_reasoning_answer_naming_no_option_is_a_parse_error() -> None:
    _, answer, error = parse_reasoning("Step 1: x y z\nAnswer: Z", OPTIONS)
    assert answer is None
    assert error == "no final answer naming one of the options"


def test_reasoning_free_text() -> None:
    steps, answer, error = parse_reasoning("Step 1: 2 + 2\nAnswer: 4 apples", None)
    assert (len(steps), answer, error) == (1, "4 apples", None)


def test_reasoning_free_text_missing_answer() -> None:
    _, answer, error = parse_reasoning("Step 1: 2 + 2", None)
    assert answer is None
    assert error is not None and "Answer:" in error


def test_reasoning_empty_text() -> None:
    assert parse_reasoning("", OPTIONS) == ([], None, "no final answer naming one of the options")


# -- JSON -----------------------------------------------------------------------------------


def test_json_in_code_fence_with_prose() -> None:
    text = 'Here is my review:\n```json\n{"verdict": "Error", "wrong_steps": [2]}\n```\nThanks.'
    assert parse_json_object(text) == {"verdict": "Error", "wrong_steps": [2]}


def test_json_nested_braces_and_braces_in_strings() -> None:
    text = 'x {"a": {"b": [1, {"c": "}"}]}, "d": "x{y", "e": "say \\"}\\""} trailing }'
    assert parse_json_object(text) == {"a": {"b": [1, {"c": "}"}]}, "d": "x{y", "e": 'say "}"'}


def test_json_skips_an_invalid_candidate() -> None:
    assert parse_json_object('{not json} then {"ok": 1}') == {"ok": 1}


@pytest.mark.parametrize("text", ["no json here", "[1, 2, 3]", '{"unterminated": 1', ""])
def test_json_none(text: str) -> None:
    assert parse_json_object(text) is None
