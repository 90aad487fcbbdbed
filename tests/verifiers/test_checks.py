"""Deterministic checks and the composite verifier."""

from __future__ import annotations

import pytest

from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.core.records import Item, Step, Trace, Verdict
from medloom.verifiers import (
    AnswerLeakage,
    Composite,
    FormatCheck,
    McqAnswerMatch,
    NumericMatch,
    StringMatch,
    registered_checks,
)
from medloom.verifiers.match import first_number

OPTIONS = {"A": "Propranolol", "B": "Levothyroxine", "C": "Radioactive iodine", "D": "Surgery"}


def mcq(answer: str | None = "A", question: str = "Best initial drug for thyrotoxic palpitations?") -> Item:
    return Item(id="q", index=0, question=question, options=OPTIONS, answer=answer)


def trace(text: str, options: dict[str, str] | None = OPTIONS, **kw) -> Trace:  # type: ignore[no-untyped-def]
    steps, answer, error = parse_reasoning(text, options)
    return Trace(
        id="t", item_id="q", node="gen", text=text, steps=steps, answer=answer, parse_error=error, **kw
    )


GOOD = "Step 1: Beta blockade controls the adrenergic symptoms.\nAnswer: A"


def test_registry_names_match_the_classes() -> None:
    assert {name: cls.name for name, cls in registered_checks().items()} == {
        name: name for name in registered_checks()
    }


# -- MCQ ------------------------------------------------------------------------------------


def test_mcq_letter_gold_match() -> None:
    v = McqAnswerMatch().check(mcq("A"), trace(GOOD))
    assert v.passed and v.score == 1.0
    assert v.verifier == "mcq_answer"
    assert v.reasons == ["answer A matches gold"]
    assert v.failing == []


def test_mcq_letter_gold_mismatch_names_both_options() -> None:
    v = McqAnswerMatch().check(mcq("A"), trace("Step 1: Replace hormone.\nAnswer: B"))
    assert not v.passed and v.score == 0.0
    assert v.reason == "answer B) Levothyroxine does not match gold A) Propranolol"
    assert v.step_flags == {}
    assert v.failing == ["mcq_answer"]


def test_mcq_text_gold_is_mapped_to_its_letter() -> None:
    item = mcq("radioactive iodine")
    assert McqAnswerMatch().check(item, trace("Step 1: Ablate.\nAnswer: C")).passed
    assert not McqAnswerMatch().check(item, trace(GOOD)).passed


def test_mcq_gold_matching_no_option() -> None:
    v = McqAnswerMatch().check(mcq("Thyroid hormone"), trace(GOOD))
    assert not v.passed
    assert "matches no option" in v.reason


def test_mcq_unparseable_trace() -> None:
    t = trace("Step 1: I cannot decide between the drugs")
    assert t.answer is None
    v = McqAnswerMatch().check(mcq("A"), t)
    assert not v.passed
    assert v.reason == "unparseable answer: no final answer naming one of the options"


def test_mcq_item_without_options_or_gold() -> None:
    free = Item(id="q", index=0, question="q", answer="A")
    assert not McqAnswerMatch().check(free, trace(GOOD)).passed
    assert not McqAnswerMatch().check(mcq(None), trace(GOOD)).passed


def test_mcq_trace_answer_as_option_text() -> None:
    # A trace built elsewhere may carry the option text rather than the letter.
    t = Trace(id="t", item_id="q", node="n", text="", answer="Propranolol")
    assert McqAnswerMatch().check(mcq("A"), t).passed


async def test_check_verify_stamps_the_node() -> None:
    v = await McqAnswerMatch().verify(mcq("A"), trace(GOOD), AgentContext(node="verify"))
    assert v.node == "verify" and v.passed
    v = await McqAnswerMatch().verify(mcq("A"), trace(GOOD), AgentContext())
    assert v.node is None


# -- string / numeric -----------------------------------------------------------------------


def free(answer: str | None) -> Item:
    return Item(id="q", index=0, question="q", answer=answer)


@pytest.mark.parametrize(
    ("predicted", "gold", "passed"),
    [
        ("Iron-deficiency anemia.", "iron deficiency anemia", True),
        ("The Café au lait spots", "cafe au lait spots", True),
        ("an ACE inhibitor", "ACE inhibitor", True),
        ("ACE inhibitors", "ACE inhibitor", False),
        ("beta blocker", "calcium channel blocker", False),
    ],
)
def test_string_match(predicted: str, gold: str, passed: bool) -> None:
    t = trace(f"Step 1: reasoning here\nAnswer: {predicted}", options=None)
    v = StringMatch().check(free(gold), t)
    assert v.passed is passed
    if not passed:
        assert predicted in v.reason and gold in v.reason


def test_string_match_missing_answer_or_gold() -> None:
    assert "unparseable" in StringMatch().check(free("x"), trace("Step 1: hmm", options=None)).reason
    assert "no gold" in StringMatch().check(free(None), trace("Answer: x", options=None)).reason


@pytest.mark.parametrize(
    ("predicted", "gold", "passed"),
    [
        ("1,250 mg", "1250", True),
        ("about 0.5 L", ".5 liters", True),
        ("-.25", "-0.25", True),
        ("-3", "-3.0", True),
        ("1e3 units", "1000", True),
        ("12", "13", False),
    ],
)
def test_numeric_match(predicted: str, gold: str, passed: bool) -> None:
    t = Trace(id="t", item_id="q", node="n", text="", answer=predicted)
    assert NumericMatch().check(free(gold), t).passed is passed


def test_numeric_match_tolerance_and_missing_numbers() -> None:
    t = Trace(id="t", item_id="q", node="n", text="", answer="101")
    assert not NumericMatch().check(free("100"), t).passed
    assert NumericMatch(rel_tol=0.02).check(free("100"), t).passed
    assert NumericMatch(abs_tol=1.0).check(free("100"), t).passed
    v = NumericMatch().check(free("100"), Trace(id="t", item_id="q", node="n", text="", answer="many"))
    assert not v.passed and "no number" in v.reason
    v = NumericMatch().check(free("unknown"), t)
    assert not v.passed and "has no number" in v.reason


def test_first_number() -> None:
    assert first_number("dose 2,500.5 mg twice") == 2500.5
    assert first_number(".5 mL") == 0.5
    assert first_number("none") is None


# -- format ---------------------------------------------------------------------------------


def test_format_well_formed() -> None:
    v = FormatCheck().check(mcq(), trace("Step 1: First finding.\nStep 2: Second finding.\nAnswer: A"))
    assert v.passed and v.reasons == ["well formed"] and v.step_flags == {}


def test_format_misnumbered_step_is_flagged() -> None:
    v = FormatCheck().check(mcq(), trace("Step 1: First finding.\nStep 3: Skipped a number.\nAnswer: A"))
    assert not v.passed
    assert v.step_flags == {3: "out of order"}
    assert "step numbered 3 where 2 was expected" in v.reasons


def test_format_empty_step_is_flagged() -> None:
    v = FormatCheck().check(mcq(), trace("Step 1: First finding.\nStep 2:\nStep 3: Third.\nAnswer: A"))
    assert not v.passed
    assert v.step_flags == {2: "empty step"}
    assert v.reasons == ["empty or misnumbered steps: [2]"]


def test_format_step_count_bounds() -> None:
    text = "Step 1: one one.\nStep 2: two two.\nStep 3: three.\nAnswer: A"
    assert not FormatCheck(max_steps=2).check(mcq(), trace(text)).passed
    assert "fewer than 4" in FormatCheck(min_steps=4).check(mcq(), trace(text)).reason
    v = FormatCheck().check(mcq(), trace("Answer: A"))
    assert not v.passed and v.reasons == ["0 steps, fewer than 1"]


def test_format_missing_answer() -> None:
    t = trace("Step 1: First finding.\nStep 2: Second finding.")
    v = FormatCheck().check(mcq(), t)
    assert not v.passed and v.reason.startswith("no final answer (")
    assert FormatCheck(require_answer=False).check(mcq(), t).passed


def test_format_truncated_output() -> None:
    t = trace("Step 1: First finding.\nStep 2: Second finding.\nAnswer: A", finish_reason="length")
    v = FormatCheck().check(mcq(), t)
    assert not v.passed
    assert v.reasons == ["output cut off at the token limit"]
    assert FormatCheck(allow_truncated=True).check(mcq(), t).passed


# -- leakage --------------------------------------------------------------------------------


def test_leakage_detected() -> None:
    item = mcq("A", question="A patient already on propranolol has palpitations. Next step?")
    v = AnswerLeakage().check(item, trace(GOOD))
    assert not v.passed
    assert v.reason == "the question names 'Propranolol'"


def test_leakage_matches_whole_words_only() -> None:
    item = mcq("D", question="Is surgery-free management possible? Which is best?")  # "surgery" as a word
    assert not AnswerLeakage().check(item, trace(GOOD)).passed
    item = mcq("D", question="Which is best for this patient's surgeryless plan?")
    v = AnswerLeakage().check(item, trace(GOOD))
    assert v.passed and v.reasons == ["no answer terms in the question"]


def test_leakage_extra_terms_and_trace_question() -> None:
    item = Item(
        id="q",
        index=0,
        question="Which drug?",
        options=OPTIONS,
        answer="A",
        data={"synonyms": ["beta blocker", "b"]},
    )
    leaky = trace(GOOD, meta={"question": "Which beta blocker controls symptoms?"})
    clean = trace(GOOD, meta={"question": "Which drug controls symptoms?"})
    assert AnswerLeakage(extra_terms_field="synonyms").check(item, leaky).passed is True  # item question
    v = AnswerLeakage(text="trace", extra_terms_field="synonyms").check(item, leaky)
    assert not v.passed and "'beta blocker'" in v.reason
    assert AnswerLeakage(text="trace", extra_terms_field="synonyms").check(item, clean).passed


# -- composite ------------------------------------------------------------------------------


class Fixed:
    """A verifier returning a fixed verdict."""

    def __init__(
        self, name: str, passed: bool, flags: dict[int, str] | None = None, score: float | None = None
    ):
        self.name = name
        self.passed = passed
        self.flags = flags or {}
        self.score = score

    async def verify(self, item: Item, trace: Trace, ctx: AgentContext) -> Verdict:
        return Verdict(
            passed=self.passed,
            score=self.score,
            step_flags=self.flags,
            reasons=[f"{self.name} says so"],
            verifier=self.name,
        )


T = Trace(id="t", item_id="q", node="n", text="", steps=[Step(index=1, text="x"), Step(index=2, text="y")])


async def test_composite_all_merges_flags_and_names_failures() -> None:
    comp = Composite(
        [
            Fixed("format", False, {2: "empty step"}, score=0.0),
            Fixed("judge", False, {2: "wrong drug", 1: "unsupported"}, score=2.0),
            Fixed("mcq_answer", True, score=1.0),
        ],
        name="verify",
    )
    v = await comp.verify(mcq(), T, AgentContext(node="verify"))
    assert not v.passed
    assert v.verifier == "verify" and v.node == "verify"
    assert v.step_flags == {2: "empty step; wrong drug", 1: "unsupported"}
    assert v.failed_by == ["format", "judge"]
    assert v.failing == ["format", "judge"]
    assert v.score == pytest.approx(1.0)
    # A failing composite reports what failed, not what passed.
    assert v.reasons == ["format: fail (format says so)", "judge: fail (judge says so)"]


async def test_composite_all_passes_when_every_part_passes() -> None:
    v = await Composite([Fixed("a", True), Fixed("b", True)]).verify(mcq(), T, AgentContext())
    assert v.passed and v.failed_by == [] and v.score is None
    assert v.reasons == ["a: pass (a says so)", "b: pass (b says so)"]


async def test_composite_any() -> None:
    parts = [Fixed("a", False, {1: "bad"}), Fixed("b", True)]
    v = await Composite(parts, mode="any").verify(mcq(), T, AgentContext())
    assert v.passed
    assert v.failed_by == ["a"]
    assert v.reasons == ["a: fail (a says so)", "b: pass (b says so)"]
    assert v.step_flags == {1: "bad"}
    v = await Composite([Fixed("a", False), Fixed("b", False)], mode="any").verify(mcq(), T, AgentContext())
    assert not v.passed and v.failed_by == ["a", "b"]


@pytest.mark.parametrize(("threshold", "passed"), [(0.5, True), (0.6, True), (2 / 3, True), (0.7, False)])
async def test_composite_threshold(threshold: float, passed: bool) -> None:
    parts = [Fixed("a", True), Fixed("b", True), Fixed("c", False)]
    v = await Composite(parts, mode="threshold", threshold=threshold).verify(mcq(), T, AgentContext())
    assert v.passed is passed
    assert v.failed_by == ["c"]


async def test_composite_of_real_checks() -> None:
    comp = Composite([FormatCheck(), McqAnswerMatch()], name="verify")
    bad = trace("Step 1: Replace hormone.\nStep 3: oops.\nAnswer: B")
    v = await comp.verify(mcq("A"), bad, AgentContext(node="verify"))
    assert not v.passed and v.failed_by == ["format", "mcq_answer"]
    assert v.step_flags == {3: "out of order"}
    v = await comp.verify(mcq("A"), trace("Step 1: Replace hormone.\nAnswer: B"), AgentContext())
    assert v.reason == "mcq_answer: fail (answer B) Levothyroxine does not match gold A) Propranolol)"
    assert (await comp.verify(mcq("A"), trace(GOOD), AgentContext())).passed


def test_composite_needs_a_verifier() -> None:
    with pytest.raises(ValueError):
        Composite([])
