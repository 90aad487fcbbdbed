"""The LLM judge: parsing its output, and judging traces through the fake OpenAI server."""

from __future__ import annotations

import json

import pytest

from medloom.agents.agent import Agent, ModelRef, Sampling
from medloom.agents.context import AgentContext
from medloom.agents.parsing import parse_reasoning
from medloom.core.events import LLMCall
from medloom.core.records import Item, Trace
from medloom.verifiers import LLMJudge, parse_judge
from medloom.verifiers.llm_judge import JudgeOutput

# -- parse_judge ----------------------------------------------------------------------------


def test_parse_json() -> None:
    out = parse_judge('{"verdict": "Error", "score": 1, "wrong_steps": [2, 3], "reason": "wrong cause"}')
    assert out == JudgeOutput(verdict="Error", score=1, wrong_steps=[2, 3], reason="wrong cause")
    assert not out.passed


def test_parse_json_in_a_fence_with_loose_values() -> None:
    text = 'Review:\n```json\n{"verdict": "**correct**", "score": 4.5, "wrong_steps": null}\n```'
    out = parse_judge(text)
    assert out is not None
    assert (out.verdict, out.score, out.wrong_steps, out.reason, out.passed) == ("Correct", 4.5, [], "", True)


@pytest.mark.parametrize(
    ("wrong_steps", "expected"),
    [([1, "3"], [1, 3]), (2, [2]), ("steps 2 and 4", [2, 4]), ([], [])],
)
def test_parse_json_wrong_steps_forms(wrong_steps: object, expected: list[int]) -> None:
    out = parse_judge(json.dumps({"verdict": "Incorrect", "wrong_steps": wrong_steps}))
    assert out is not None and out.verdict == "Error" and out.wrong_steps == expected


def test_parse_labelled_lines() -> None:
    text = (
        "Verdict: **Error**\n"
        "Score: 2/5\n"
        "Wrong steps: 2 and 3\n"
        "Reason: Heavy periods point to iron deficiency.\n"
    )
    out = parse_judge(text)
    assert out == JudgeOutput(
        verdict="Error", score=2.0, wrong_steps=[2, 3], reason="Heavy periods point to iron deficiency."
    )


def test_parse_labelled_lines_correct_with_no_wrong_steps() -> None:
    out = parse_judge("Verdict: Correct\nScore: 5\nWrong steps: none\nReason: Every step follows.")
    assert out is not None and out.passed and out.wrong_steps == [] and out.score == 5.0


def test_parse_labelled_lines_first_block_wins() -> None:
    text = (
        "Verdict: Error\nWrong steps: 2\nReason: first\n\nVerdict: Correct\nWrong steps: none\nReason: second"
    )
    out = parse_judge(text)
    assert out is not None
    assert (out.verdict, out.wrong_steps, out.reason) == ("Error", [2], "first")


def test_parse_labelled_score_is_capped() -> None:
    out = parse_judge("Verdict: Correct\nScore: 9")
    assert out is not None and out.score == 5.0


def test_parse_invalid_json_falls_back_to_lines() -> None:
    out = parse_judge('{"verdict": "Perhaps"}\nVerdict: Error\nFlagged steps: 1')
    assert out is not None and out.verdict == "Error" and out.wrong_steps == [1]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I think this solution looks fine overall.",
        "Verdict: maybe",
        '{"verdict": "Perhaps", "score": 3}',
        '{"score": 3, "reason": "no verdict"}',
        "Score: 4\nReason: missing the verdict line",
    ],
)
def test_parse_garbage(text: str) -> None:
    assert parse_judge(text) is None


# -- LLMJudge through the fake --------------------------------------------------------------

ITEM = Item(
    id="q1",
    index=0,
    question="A 24-year-old woman with heavy periods has a low MCV. Which test confirms the cause?",
    options={"A": "Serum ferritin", "B": "Hemoglobin electrophoresis"},
    answer="A",
)
TEXT = (
    "Step 1: Low MCV means microcytic anemia.\n"
    "Step 2: Microcytic anemia in a young woman is thalassemia.\n"
    "Step 3: Electrophoresis confirms it.\n"
    "Answer: B"
)
CHAT = ModelRef(alias="judge", served="fake-model", mode="chat")


def _trace() -> Trace:
    steps, answer, _ = parse_reasoning(TEXT, ITEM.options)
    return Trace(id="q1/gen/m/t0/0", item_id="q1", node="gen", text=TEXT, steps=steps, answer=answer)


def _judge(client, mode: str = "chat", **kw) -> LLMJudge:  # type: ignore[no-untyped-def]
    model = CHAT if mode == "chat" else CHAT.model_copy(update={"mode": "completion"})
    agent = Agent("verify:judge", model, "mcq_judge", client, sampling=Sampling(max_tokens=96))
    return LLMJudge(agent, **kw)


async def test_correct_passes(fake_llm) -> None:
    server, client = fake_llm(
        lambda req: '{"verdict": "Correct", "score": 5, "wrong_steps": [], "reason": "All steps hold."}'
    )
    events: list = []
    ctx = AgentContext(item_id="q1", node="judge", emit=events.append)
    v = await _judge(client).verify(ITEM, _trace(), ctx)
    assert v.passed
    assert (v.score, v.step_flags, v.reasons) == (5.0, {}, ["All steps hold."])
    assert (v.verifier, v.node) == ("verify:judge", "judge")
    (req,) = server.requests
    assert "Correct answer: A) Serum ferritin" in req.prompt_text
    assert "Step 2: Microcytic anemia in a young woman is thalassemia." in req.prompt_text
    assert req.body["temperature"] == 0.0 and req.body["max_tokens"] == 96
    assert [type(e) for e in events] == [LLMCall]


async def test_error_flags_the_wrong_steps(fake_llm) -> None:
    reply = {"verdict": "Error", "score": 1, "wrong_steps": [2, 3, 9], "reason": "It is iron deficiency."}
    server, client = fake_llm(lambda req: json.dumps(reply))
    v = await _judge(client).verify(ITEM, _trace(), AgentContext())
    assert not v.passed
    assert v.score == 1.0
    # Step 9 does not exist in the trace and is not flagged.
    assert v.step_flags == {2: "It is iron deficiency.", 3: "It is iron deficiency."}
    assert v.reasons == ["It is iron deficiency."]
    assert server.request_count == 1


async def test_error_without_a_reason_still_flags(fake_llm) -> None:
    _, client = fake_llm(lambda req: '{"verdict": "Error", "wrong_steps": [1]}')
    v = await _judge(client).verify(ITEM, _trace(), AgentContext())
    assert not v.passed
    assert v.step_flags == {1: "marked wrong by the judge"}
    assert v.reasons == ["Error"]


async def test_correct_with_flagged_steps_is_treated_as_an_error(fake_llm) -> None:
    _, client = fake_llm(
        lambda req: '{"verdict": "Correct", "score": 4, "wrong_steps": [2], "reason": "Mostly fine."}'
    )
    v = await _judge(client).verify(ITEM, _trace(), AgentContext())
    assert not v.passed
    assert v.step_flags == {2: "Mostly fine."}
    assert v.reasons == ["Mostly fine.", "judged correct but flagged steps; treated as an error"]


async def test_unparseable_output_retries_once_then_fails(fake_llm) -> None:
    server, client = fake_llm(lambda req: "Hmm, hard to say. The student tried.")
    v = await _judge(client).verify(ITEM, _trace(), AgentContext(node="judge"))
    assert not v.passed
    assert v.score is None and v.step_flags == {}
    assert v.reasons == ["judge output unparseable: 'Hmm, hard to say. The student tried.'"]
    assert server.request_count == 2
    first, retry = server.requests
    # The retry samples at a higher temperature, so it is not a repeat of the first request.
    assert (first.body["temperature"], retry.body["temperature"]) == (0.0, 0.7)
    assert first.prompt_text == retry.prompt_text


async def test_retry_that_parses_is_used(fake_llm) -> None:
    replies = iter(["no idea", "Verdict: Error\nScore: 2\nWrong steps: 2\nReason: wrong cause"])
    server, client = fake_llm(lambda req: next(replies))
    v = await _judge(client).verify(ITEM, _trace(), AgentContext())
    assert not v.passed and v.step_flags == {2: "wrong cause"} and v.score == 2.0
    assert server.request_count == 2


async def test_no_retry_when_disabled(fake_llm) -> None:
    server, client = fake_llm(lambda req: "no idea")
    v = await _judge(client, parse_retries=0).verify(ITEM, _trace(), AgentContext())
    assert not v.passed and "unparseable" in v.reason
    assert server.request_count == 1


async def test_completion_judge_continues_the_verdict_line(fake_llm) -> None:
    server, client = fake_llm(
        lambda req: " Error\nScore: 1\nWrong steps: 2\nReason: Wrong cause.\n###\nQuestion:"
    )
    v = await _judge(client, mode="completion").verify(ITEM, _trace(), AgentContext())
    (req,) = server.requests
    assert req.kind == "completion" and req.prompt_text.endswith("Review:\nVerdict:")
    assert not v.passed
    assert (v.score, v.step_flags) == (1.0, {2: "Wrong cause."})
