"""The gaps issue 13 found in the KG checks, each pinned by the example that slipped through.

The row: path SLC9A1 –associates– Barrett's esophagus –resembles– stomach cancer (demo KG), kept
with the question "SLC9A1 is associated with a disease of one organ; which disease localizes to
that organ?" and a step "The disease is associated with a spinal cancer." (a distractor).
"""

from __future__ import annotations

import pytest

from medloom.core.records import Item, Step, Trace
from medloom.kg import load_kg
from medloom.kg.paths import KGPath, make_path
from medloom.kg.verbalise import role_question
from medloom.verifiers import registered_checks
from medloom.verifiers.kg_grounding import KGGrounding
from medloom.verifiers.match import McqAnswerMatch

SLC9A1_QUESTION = "SLC9A1 is associated with a disease of one organ; which disease localizes to that organ?"
OPTIONS = {"A": "spinal cancer", "B": "stomach cancer", "C": "hepatitis B"}


def slc9a1_path() -> KGPath:
    loaded = load_kg()
    names = ["SLC9A1", "Barrett's esophagus", "stomach cancer"]
    return make_path(loaded.kg, [loaded.index.lookup(n)[0] for n in names])


def item(question: str = SLC9A1_QUESTION) -> Item:
    return Item(
        id="slc9a1",
        index=0,
        question=question,
        options=OPTIONS,
        answer="B",
        data={"path": slc9a1_path().model_dump()},
    )


def trace(*steps: str, answer: str = "B) stomach cancer") -> Trace:
    text = "\n".join(f"Step {i}: {s}" for i, s in enumerate(steps, 1)) + f"\nAnswer: {answer}"
    return Trace(
        id="t",
        item_id="slc9a1",
        node="n",
        text=text,
        steps=[Step(index=i, text=s) for i, s in enumerate(steps, 1)],
        answer=answer[0],
    )


HOPS = ("SLC9A1 is associated with Barrett's esophagus.", "Barrett's esophagus resembles stomach cancer.")
CONCLUSION = "So the answer is stomach cancer."


def test_the_correct_slc9a1_trace_passes_every_mode() -> None:
    for params in (
        {},
        {"check_relations": True},
        {"check_relations": True, "cover_path": "path", "strict": True},
    ):
        verdict = KGGrounding(**params).check(item(), trace(*HOPS, CONCLUSION))
        assert verdict.passed, (params, verdict.reasons)


def test_a_coreference_to_the_previous_step_is_resolved_and_checked() -> None:
    slipped = trace(*HOPS, "The disease is associated with a spinal cancer.", CONCLUSION)
    # the gap: a step naming one KG entity was never checked
    assert KGGrounding(coreference=False).check(item(), slipped).passed
    verdict = KGGrounding().check(item(), slipped)
    assert not verdict.passed and list(verdict.step_flags) == [3]
    assert "spinal cancer" in verdict.step_flags[3] and "Barrett's esophagus" in verdict.step_flags[3]
    # "it" and "this gene" resolve too; a true claim through a coreference passes
    assert not KGGrounding().check(item(), trace(HOPS[0], "It resembles spinal cancer.")).passed
    assert KGGrounding().check(item(), trace(HOPS[0], "The disease resembles stomach cancer.")).passed
    assert (
        KGGrounding()
        .check(item(), trace(HOPS[0], "This gene is associated with Barrett's esophagus."))
        .passed
    )


def test_strict_mode_flags_an_unresolvable_coreference_claim() -> None:
    check = KGGrounding(check_relations=True, cover_path="path", strict=True)
    # the first step has nothing before it and the path has no compound: "this drug" is unresolved
    verdict = check.check(item(), trace("This drug treats spinal cancer.", *HOPS, CONCLUSION))
    assert not verdict.passed and 1 in verdict.step_flags


def test_denials_are_checked_against_the_kg() -> None:
    check = KGGrounding()
    false_denial = trace("Barrett's esophagus does not resemble stomach cancer.")
    verdict = check.check(item(), false_denial)
    assert not verdict.passed and "denies a KG edge" in verdict.step_flags[1]
    true_denial = trace("Barrett's esophagus does not resemble spinal cancer.")
    assert check.check(item(), true_denial).passed  # the old check read it as a claim and failed it
    assert not KGGrounding(negation=False).check(item(), true_denial).passed
    # a denial in one clause does not turn the clause before it into one
    assert not check.check(
        item(), trace("Barrett's esophagus resembles spinal cancer, not stomach cancer.")
    ).passed


def test_a_relation_stated_the_wrong_way_round_is_flagged() -> None:
    check = KGGrounding(check_relations=True)
    plain = Item(id="i", index=0)
    assert check.check(plain, trace("Eribulin treats breast cancer.")).passed
    assert check.check(plain, trace("Breast cancer is treated by Eribulin.")).passed
    verdict = check.check(plain, trace("Breast cancer treats Eribulin."))
    assert not verdict.passed and "wrong way round" in verdict.step_flags[1]


def test_strict_path_mode_flags_distractors_restated_questions_and_stray_steps() -> None:
    check = KGGrounding(check_relations=True, cover_path="path", strict=True)
    # a distractor stated as fact, even in wording the KG cannot refute by adjacency alone
    distractor = check.check(item(), trace(*HOPS, "Spinal cancer is a disease.", CONCLUSION))
    assert not distractor.passed and "Spinal cancer" in distractor.step_flags[3]
    restated = check.check(item(), trace(role_question(slc9a1_path()), *HOPS, CONCLUSION))
    assert not restated.passed and list(restated.step_flags) == [1]
    stray = check.check(item(), trace(*HOPS, "Both are common conditions.", CONCLUSION))
    assert not stray.passed and list(stray.step_flags) == [3]
    # without strict, the stray step and the distractor sentence without an edge claim pass
    loose = KGGrounding(check_relations=True, cover_path="path")
    assert loose.check(item(), trace(*HOPS, "Spinal cancer is a disease.", CONCLUSION)).passed


def test_strict_needs_the_path_field() -> None:
    with pytest.raises(TypeError, match="strict needs cover_path"):
        KGGrounding(strict=True)


def test_question_fidelity_rejects_the_slc9a1_question_and_accepts_faithful_ones() -> None:
    check = registered_checks()["question_fidelity"]()
    verdict = check.check(item(), trace())
    assert not verdict.passed
    text = " ".join(verdict.reasons)
    assert "(associates → resembles; it reads associates)" in text
    assert "localizes, which the path does not have" in text
    assert "describes a organ" in text
    for faithful in (
        role_question(slc9a1_path()),
        "SLC9A1 is associated with a disease that resembles which other disease?",
        "The gene SLC9A1 is linked to a condition; which disease is similar to that condition?",
    ):
        assert check.check(item(faithful), trace()).passed, faithful
    # a question must walk the path from its anchor: one asked from the answer's end reads backwards
    backwards = check.check(item("Which disease is similar to a condition linked to SLC9A1?"), trace())
    assert not backwards.passed and "it reads resembles → associates" in backwards.reason
    wrong_type = check.check(item("SLC9A1 is associated with a disease that resembles which gene?"), trace())
    assert not wrong_type.passed and "which disease" in wrong_type.reason
    named = check.check(
        item("SLC9A1 is associated with a disease resembling which disease, not spinal cancer?"), trace()
    )
    assert not named.passed and "spinal cancer" in named.reason


def test_the_right_answer_text_under_the_wrong_letter_fails_mcq_answer() -> None:
    good = McqAnswerMatch().check(item(), trace(*HOPS, answer="B) stomach cancer"))
    assert good.passed
    swapped = trace(*HOPS, answer="A) stomach cancer")
    swapped = swapped.model_copy(update={"answer": "B"})  # the parser trusted the text
    verdict = McqAnswerMatch().check(item(), swapped)
    assert not verdict.passed and "letter A with the text of option B" in verdict.reason
