"""Answer checks against the gold label: MCQ letter, normalised string, number."""

from __future__ import annotations

import math
import re

from medloom.agents.parsing import parse_answer
from medloom.core.records import Item, Trace, Verdict
from medloom.core.text import extract_choice, normalise
from medloom.verifiers.base import Check, register_check

_LETTER_AND_TEXT = re.compile(r"^\s*\**\(?([A-Za-z])\)?[.):\-]\s*(.+?)\**\s*$")


def letter_text_conflict(answer_line: str | None, options: dict[str, str]) -> str | None:
    """Why an answer line such as "C) stomach cancer" contradicts itself: its letter is one
    option and its text another's (None when it agrees or gives only one of them)."""
    m = _LETTER_AND_TEXT.match(answer_line or "")
    if not m or m.group(1).upper() not in {k.upper() for k in options}:
        return None
    letter = next(k for k in options if k.upper() == m.group(1).upper())
    by_text = extract_choice(m.group(2), options)
    if by_text is None or by_text == letter:
        return None
    return f"the answer line gives letter {letter} with the text of option {by_text}) {options[by_text]}"


@register_check("mcq_answer")
class McqAnswerMatch(Check):
    """Passes when the trace's option letter equals the gold letter (gold may be option text), and
    its answer line does not pair one option's letter with another's text."""

    name = "mcq_answer"

    def check(self, item: Item, trace: Trace) -> Verdict:
        if not item.options or item.answer is None:
            return self.verdict(False, ["item has no options or no gold answer to compare with"])
        gold = item.answer if item.answer in item.options else extract_choice(item.answer, item.options)
        if gold is None:
            return self.verdict(False, [f"gold answer '{item.answer}' matches no option"])
        if trace.answer is None:
            return self.verdict(False, [f"unparseable answer: {trace.parse_error or 'missing'}"])
        predicted = (
            trace.answer if trace.answer in item.options else extract_choice(trace.answer, item.options)
        )
        conflict = letter_text_conflict(parse_answer(trace.text), item.options)
        if conflict:
            return self.verdict(False, [conflict])
        if predicted == gold:
            return self.verdict(True, [f"answer {gold} matches gold"])
        shown = f"{predicted}) {item.options.get(predicted, '')}" if predicted else repr(trace.answer)
        return self.verdict(False, [f"answer {shown} does not match gold {gold}) {item.options[gold]}"])


@register_check("string_match")
class StringMatch(Check):
    """Normalised exact match of the trace's answer with the gold answer."""

    name = "string_match"

    def check(self, item: Item, trace: Trace) -> Verdict:
        if item.answer is None:
            return self.verdict(False, ["item has no gold answer"])
        if trace.answer is None:
            return self.verdict(False, [f"unparseable answer: {trace.parse_error or 'missing'}"])
        if normalise(trace.answer) == normalise(item.answer):
            return self.verdict(True, ["answer matches gold"])
        return self.verdict(False, [f"answer '{trace.answer}' != gold '{item.answer}'"])


_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def first_number(text: str) -> float | None:
    m = _NUMBER.search(text)
    if not m:
        return None
    try:
        return float(m.group(0).replace(",", ""))
    except ValueError:
        return None


@register_check("numeric_match")
class NumericMatch(Check):
    """The first number in the answer equals the gold number within a relative tolerance."""

    name = "numeric_match"

    def __init__(self, rel_tol: float = 1e-6, abs_tol: float = 0.0):
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    def check(self, item: Item, trace: Trace) -> Verdict:
        gold = first_number(item.answer or "")
        if gold is None:
            return self.verdict(False, [f"gold answer '{item.answer}' has no number"])
        got = first_number(trace.answer or "")
        if got is None:
            return self.verdict(False, [f"no number in answer '{trace.answer}'"])
        if math.isclose(got, gold, rel_tol=self.rel_tol, abs_tol=self.abs_tol):
            return self.verdict(True, [f"{got:g} matches gold {gold:g}"])
        return self.verdict(False, [f"{got:g} != gold {gold:g}"])
