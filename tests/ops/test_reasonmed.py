"""The reasonmed recipe's control flow on scripted replies: verify, refine, tier, rank, summarise."""

from __future__ import annotations

import pytest

from medloom.core.events import Selection, TraceDropped, TraceRevised, VerdictGiven
from medloom.ops.difficulty import tier
from medloom.ops.ranking import parse_quality
from medloom.testing import FakeRequest
from tests.graphs.test_engine import OPTIONS, RIGHT, WRONG, ends, item, run
from tests.ops.recipes import recipe_runtime, tail

RIGHT_2 = "Step 1: Thyrotoxicosis causes adrenergic symptoms.\nStep 2: Propranolol blunts them.\nAnswer: A"
ONE_TRACE_PER_TEMPERATURE = ("models.gen.model=fake-model", "nodes.generate.samples=1")


class ReasonMedScript:
    """Plays generator, verifier, refiner, ranker and summariser; records the refiner prompts."""

    def __init__(self, by_temperature: dict[float, str], quality: dict[str, int], summary_answer: str = "A"):
        self.by_temperature = by_temperature
        self.quality = quality
        self.summary_answer = summary_answer
        self.refine_prompts: list[str] = []

    def __call__(self, req: FakeRequest) -> str:
        # routed by the calling node (in process), so rewording a template reroutes nothing
        case = tail(req.prompt_text)
        if req.node == "generate":
            return self.by_temperature[req.body["temperature"]].removeprefix("Step 1:")
        if req.node == "verify":
            if "Answer: A" in case:
                return " Correct\nWrong steps: none\nReason: Sound steps and the right drug."
            return " Error\nWrong steps: 2\nReason: Levothyroxine worsens thyrotoxicosis."
        if req.node == "refine":
            self.refine_prompts.append(case)
            return " Propranolol blocks the adrenergic symptoms.\nAnswer: A"
        if req.node == "rank":
            score = next((s for key, s in self.quality.items() if key in case), 1)
            return f" {score}\nReason: rated {score}."
        if req.node == "summarise":
            letter = self.summary_answer if "blunts" in case else "A"
            return f" Beta blockade controls thyrotoxic symptoms.\nAnswer: {letter}) {OPTIONS[letter]}"
        raise AssertionError(f"unexpected call from {req.node!r} / {req.agent!r}")


async def test_failed_trace_is_refined_verified_again_and_ranked(fake_llm) -> None:
    script = ReasonMedScript(
        {0.7: RIGHT, 0.9: RIGHT_2, 1.0: WRONG},
        quality={"Propranolol blocks the adrenergic": 5, "Propranolol blunts": 4, "beta blocker": 3},
    )
    _server, client = fake_llm(script)
    rt = await recipe_runtime("reasonmed", client, *ONE_TRACE_PER_TEMPERATURE)
    events = await run(rt, [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept"

    # The T=1.0 trace failed, was refined once, and its fix passed the second verification.
    verdicts = {(e.trace_id, e.verdict.passed) for e in events if isinstance(e, VerdictGiven)}
    assert ("q1/generate/gen/t1/0", False) in verdicts
    assert ("q1/generate/gen/t1/0+r1", True) in verdicts
    (revision,) = [e for e in events if isinstance(e, TraceRevised)]
    assert revision.new_trace_id == "q1/generate/gen/t1/0+r1"

    # Top 2 by quality: the fix (5) and the second CoT (4); the third (3) is dropped by the ranker.
    (ranking,) = [e for e in events if isinstance(e, Selection) and e.method == "quality_rank"]
    assert ranking.selected == ["q1/generate/gen/t1/0+r1", "q1/generate/gen/t0.9/0"]
    dropped = [e for e in events if isinstance(e, TraceDropped) and e.node == "rank"]
    assert [d.trace_id for d in dropped] == ["q1/generate/gen/t0.7/0"]

    rows = sorted(end.rows, key=lambda r: -float(r["quality"]))
    assert [r["trace_id"] for r in rows] == ranking.selected
    assert [r["quality"] for r in rows] == [5.0, 4.0]
    assert all(
        r["summary"] == "Beta blockade controls thyrotoxic symptoms.\nAnswer: A) Propranolol" for r in rows
    )
    assert rows[0]["reasoning"].startswith("Step 1: The thyroid is overactive.")  # the long CoT
    assert {(r["difficulty"], r["first_pass_failed"]) for r in rows} == {("easy", 1)}


async def test_refiner_is_fed_other_attempts_reasons_and_all_failing_is_hard(fake_llm) -> None:
    script = ReasonMedScript({0.7: WRONG, 0.9: WRONG, 1.0: WRONG}, quality={})
    _server, client = fake_llm(script)
    rt = await recipe_runtime("reasonmed", client, *ONE_TRACE_PER_TEMPERATURE)
    events = await run(rt, [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept" and len(end.rows) == 2
    assert {r["difficulty"] for r in end.rows} == {"hard"}
    assert len(script.refine_prompts) == 3
    # Each refinement sees why the other attempts failed.
    assert all(
        "Errors in other attempts: " in p and "Levothyroxine worsens" in p for p in script.refine_prompts
    )
    # Equal quality: the tie goes to the lower trace id, deterministically.
    assert [r["trace_id"] for r in end.rows] == ["q1/generate/gen/t0.7/0+r1", "q1/generate/gen/t0.9/0+r1"]


async def test_refinement_that_still_fails_rejects_the_item(fake_llm) -> None:
    script = ReasonMedScript({0.7: WRONG, 0.9: WRONG, 1.0: WRONG}, quality={})

    def never_fixed(req: FakeRequest) -> str:
        if req.node == "refine":
            return " Levothyroxine again.\nAnswer: B"
        return script(req)

    _server, client = fake_llm(never_fixed)
    rt = await recipe_runtime("reasonmed", client, *ONE_TRACE_PER_TEMPERATURE)
    end = ends(await run(rt, [item(1)]))["q1"]
    assert (end.status, end.node) == ("rejected", "refine")
    assert end.reason_code is not None and "after 1 refinement rounds" in end.reason_code


async def test_a_summary_contradicting_its_chain_of_thought_is_dropped(fake_llm) -> None:
    script = ReasonMedScript(
        {0.7: RIGHT, 0.9: RIGHT_2, 1.0: RIGHT}, quality={"blunts": 5, "beta blocker": 3}, summary_answer="B"
    )
    _server, client = fake_llm(script)
    rt = await recipe_runtime("reasonmed", client, *ONE_TRACE_PER_TEMPERATURE)
    events = await run(rt, [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept" and [r["trace_id"] for r in end.rows] == ["q1/generate/gen/t0.7/0"]
    (dropped,) = [e for e in events if isinstance(e, TraceDropped) and e.node == "summarise"]
    assert dropped.trace_id == "q1/generate/gen/t0.9/0"
    assert dropped.reason == "the summary answers B but the chain of thought answers A"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Quality: 4\nReason: clear", (4.0, "clear")), ('{"score": 7}', (5.0, "")), ("no idea", (None, ""))],
)
def test_parse_quality(text: str, expected: tuple[float | None, str]) -> None:
    assert parse_quality(text) == expected


def test_tiers_follow_reasonmed_error_counts() -> None:
    assert [tier(f, 9, 0.5, 0.85) for f in (0, 4, 5, 7, 8, 9)] == [
        "easy",
        "easy",
        "medium",
        "medium",
        "hard",
        "hard",
    ]
