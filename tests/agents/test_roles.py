"""The generator and refiner roles, end to end through the fake OpenAI server."""

from __future__ import annotations

import pytest

from medloom.agents.agent import Agent, ModelRef, Sampling
from medloom.agents.context import AgentContext
from medloom.agents.roles import Generator, GeneratorRole, Refiner, RefinerRole, merge_steps
from medloom.core.errors import FatalLLMError
from medloom.core.events import LLMCall, TraceCreated, TraceRevised
from medloom.core.records import Item, Step, Trace, Verdict
from medloom.testing import FakeRequest, Reply

ITEM = Item(
    id="q7",
    index=0,
    question="A 24-year-old woman with heavy periods has a low MCV. Which test confirms the cause?",
    options={"A": "Serum ferritin", "B": "Hemoglobin electrophoresis", "C": "Vitamin B12 level"},
    answer="A",
)
CHAT = ModelRef(alias="m", served="fake-model", mode="chat")
COMPLETION = ModelRef(alias="base", served="fake-model", mode="completion")


def _events() -> tuple[list, AgentContext]:
    events: list = []
    return events, AgentContext(item_id=ITEM.id, node="gen", emit=events.append)


# -- generator ------------------------------------------------------------------------------


async def test_generator_samples_n_per_temperature(fake_llm) -> None:
    outputs = [
        "Step 1: Low MCV means microcytic anemia.\nStep 2: Heavy periods cause iron loss.\nAnswer: A",
        "**Step 1:** Microcytic anemia suggests thalassemia.\n**Answer:** B",
    ]
    server, client = fake_llm(lambda req: outputs)
    gen = Generator(Agent("gen", CHAT, "mcq_cot", client), samples=2, temperatures=[0.3, 0.9])
    assert isinstance(gen, GeneratorRole)
    events, ctx = _events()

    traces = await gen.generate(ITEM, ctx)

    assert [t.id for t in traces] == [
        "q7/gen/m/t0.3/0",
        "q7/gen/m/t0.3/1",
        "q7/gen/m/t0.9/0",
        "q7/gen/m/t0.9/1",
    ]
    assert [t.temperature for t in traces] == [0.3, 0.3, 0.9, 0.9]
    assert [t.sample_index for t in traces] == [0, 1, 0, 1]
    assert [t.answer for t in traces] == ["A", "B", "A", "B"]
    assert [[s.index for s in t.steps] for t in traces] == [[1, 2], [1], [1, 2], [1]]
    assert traces[0].steps[1].text == "Heavy periods cause iron loss."
    assert all(t.item_id == "q7" and t.node == "gen" and t.model == "fake-model" for t in traces)
    assert all(t.finish_reason == "stop" and t.parse_error is None for t in traces)

    # One request per temperature, each asking for n=2 samples.
    requests = sorted(server.requests, key=lambda r: r.body["temperature"])
    assert [(r.kind, r.n, r.body["temperature"]) for r in requests] == [("chat", 2, 0.3), ("chat", 2, 0.9)]
    assert ITEM.question in requests[0].prompt_text

    created = [e.trace.id for e in events if isinstance(e, TraceCreated)]
    assert sorted(created) == sorted(t.id for t in traces)
    calls = [e for e in events if isinstance(e, LLMCall)]
    assert len(calls) == 2 and all(c.node == "gen" and c.response is not None for c in calls)

    # Same item, same settings: the same ids.
    again = await gen.generate(ITEM, AgentContext(item_id=ITEM.id, node="gen"))
    assert [t.id for t in again] == [t.id for t in traces]


async def test_generator_defaults_to_the_sampling_temperature(fake_llm) -> None:
    server, client = fake_llm(lambda req: "Step 1: x y z\nAnswer: C")
    agent = Agent("g", CHAT, "mcq_cot", client, sampling=Sampling(temperature=0.5, max_tokens=50))
    traces = await Generator(agent).generate(ITEM, AgentContext())
    assert [(t.id, t.answer) for t in traces] == [("q7/g/m/t0.5/0", "C")]
    (req,) = server.requests
    assert (req.body["temperature"], req.body["max_tokens"], req.n) == (0.5, 50, 1)


async def test_unparseable_output_is_recorded_not_raised(fake_llm) -> None:
    _, client = fake_llm(lambda req: "Step 1: I am not sure what to do")
    (trace,) = await Generator(Agent("g", CHAT, "mcq_cot", client)).generate(ITEM, AgentContext())
    assert trace.answer is None
    assert trace.parse_error == "no final answer naming one of the options"
    assert [s.text for s in trace.steps] == ["I am not sure what to do"]


async def test_completion_mode_prepends_the_prompt_prefix(fake_llm) -> None:
    # The fake applies the completion stop strings, so the made-up next question is cut.
    reply = " Low MCV means microcytic anemia.\nStep 2: Heavy periods.\nAnswer: A\n###\nQuestion: next"
    server, client = fake_llm(lambda req: reply)
    (trace,) = await Generator(Agent("g", COMPLETION, "mcq_cot", client)).generate(ITEM, AgentContext())

    (req,) = server.requests
    assert req.kind == "completion"
    assert req.prompt_text.endswith("C) Vitamin B12 level\nStep 1:")
    assert "###" in req.body["stop"]
    assert trace.text == "Step 1: Low MCV means microcytic anemia.\nStep 2: Heavy periods.\nAnswer: A"
    assert [(s.index, s.text) for s in trace.steps] == [
        (1, "Low MCV means microcytic anemia."),
        (2, "Heavy periods."),
    ]
    assert trace.answer == "A"
    assert trace.id == "q7/g/base/t0/0"


async def test_completion_prefix_gets_a_space_when_the_output_has_none(fake_llm) -> None:
    _, client = fake_llm(lambda req: "Microcytic.\nAnswer: A")
    texts, _ = await Agent("g", COMPLETION, "mcq_cot", client).call({**_item_vars()})
    assert texts == ["Step 1: Microcytic.\nAnswer: A"]


def _item_vars() -> dict:
    from medloom.agents.agent import item_variables

    return item_variables(ITEM)


async def test_agent_reports_a_failed_call_and_raises(fake_llm) -> None:
    _, client = fake_llm(lambda req: Reply.error(400, message="prompt too long"))
    events, ctx = _events()
    with pytest.raises(FatalLLMError, match="HTTP 400"):
        await Generator(Agent("gen", CHAT, "mcq_cot", client)).generate(ITEM, ctx)
    (call,) = events
    assert isinstance(call, LLMCall)
    assert call.response is None and call.error is not None and "400" in call.error


# -- refiner --------------------------------------------------------------------------------

ORIGINAL = (
    "Step 1: Low MCV means microcytic anemia.\n"
    "Step 2: A microcytic anemia in a young woman is thalassemia.\n"
    "Step 3: Electrophoresis confirms it.\n"
    "Answer: B"
)


def _original() -> Trace:
    from medloom.agents.parsing import parse_reasoning

    steps, answer, _ = parse_reasoning(ORIGINAL, ITEM.options)
    return Trace(
        id="q7/gen/m/t0.7/1",
        item_id=ITEM.id,
        node="gen",
        text=ORIGINAL,
        steps=steps,
        answer=answer,
        temperature=0.7,
        sample_index=1,
        meta={"origin": "test"},
    )


FLAGGED = Verdict(
    passed=False,
    step_flags={2: "heavy periods point to iron loss"},
    reasons=["step 2 is wrong"],
    verifier="judge",
)


async def test_refiner_rewrites_only_flagged_steps(fake_llm) -> None:
    fix = (
        "Step 2: Heavy periods cause iron deficiency.\n"
        "Step 3: This rewrite of an unflagged step is ignored.\n"
        "Answer: A"
    )
    server, client = fake_llm(lambda req: fix)
    refiner = Refiner(Agent("refine", CHAT, "mcq_refine", client))
    assert isinstance(refiner, RefinerRole)
    events, ctx = _events()
    ctx = ctx.at("refine")
    before = _original()

    new = await refiner.refine(ITEM, before, FLAGGED, ctx, ["another attempt ignored the menorrhagia"])

    assert [(s.index, s.text) for s in new.steps] == [
        (1, "Low MCV means microcytic anemia."),
        (2, "Heavy periods cause iron deficiency."),
        (3, "Electrophoresis confirms it."),
    ]
    assert new.answer == "A"
    assert new.text == (
        "Step 1: Low MCV means microcytic anemia.\n"
        "Step 2: Heavy periods cause iron deficiency.\n"
        "Step 3: Electrophoresis confirms it.\n"
        "Answer: A"
    )
    assert new.id == "q7/gen/m/t0.7/1+r1"
    assert new.round == 1
    assert new.node == "refine"
    assert new.verdicts == []
    assert (new.temperature, new.sample_index) == (0.7, 1)
    assert new.meta == {"origin": "test", "revised_from": before.id}
    (rev,) = new.revisions
    assert rev.round == 1 and rev.node == "refine"
    assert rev.flagged_steps == [2]
    assert rev.reasons == ["heavy periods point to iron loss"]
    assert rev.before == ORIGINAL and rev.after == new.text
    # The original trace is untouched.
    assert before.round == 0 and before.revisions == [] and before.text == ORIGINAL

    (req,) = server.requests
    assert "- Step 2: heavy periods point to iron loss" in req.prompt_text
    assert "- Step 1:" not in req.prompt_text
    assert "another attempt ignored the menorrhagia" in req.prompt_text
    assert "Step 2: A microcytic anemia in a young woman is thalassemia." in req.prompt_text

    revised = [e for e in events if isinstance(e, TraceRevised)]
    assert [(e.trace_id, e.new_trace_id, e.node) for e in revised] == [(before.id, new.id, "refine")]
    assert [e.trace.id for e in events if isinstance(e, TraceCreated)] == [new.id]


async def test_refiner_without_other_reasons_leaves_that_section_out(fake_llm) -> None:
    server, client = fake_llm(lambda req: "Step 2: Iron deficiency.\nAnswer: A")
    await Refiner(Agent("refine", CHAT, "mcq_refine", client)).refine(
        ITEM, _original(), FLAGGED, AgentContext()
    )
    assert "other attempts" not in server.requests[0].prompt_text


async def test_refiner_rounds_accumulate(fake_llm) -> None:
    replies = iter(["Step 2: Still thalassemia.\nAnswer: B", "Step 2: Iron deficiency.\nAnswer: A"])
    _, client = fake_llm(lambda req: next(replies))
    refiner = Refiner(Agent("refine", CHAT, "mcq_refine", client))
    first = await refiner.refine(ITEM, _original(), FLAGGED, AgentContext())
    second = await refiner.refine(ITEM, first, FLAGGED, AgentContext())
    assert (first.round, second.round) == (1, 2)
    assert second.id == "q7/gen/m/t0.7/1+r1+r2"
    assert [r.round for r in second.revisions] == [1, 2]
    assert second.revisions[1].before == first.text
    assert (first.answer, second.answer) == ("B", "A")
    assert second.meta["revised_from"] == first.id


async def test_refiner_flags_every_step_when_none_is_flagged(fake_llm) -> None:
    server, client = fake_llm(
        lambda req: "Step 1: New one.\nStep 2: New two.\nStep 3: New three.\nStep 4: Extra.\nAnswer: A"
    )
    verdict = Verdict(passed=False, reasons=["answer B does not match gold A"], verifier="mcq_answer")
    new = await Refiner(Agent("refine", CHAT, "mcq_refine", client)).refine(
        ITEM, _original(), verdict, AgentContext()
    )
    assert [s.text for s in new.steps] == ["New one.", "New two.", "New three.", "Extra."]
    assert new.revisions[0].flagged_steps == [1, 2, 3]
    assert new.revisions[0].reasons == ["answer B does not match gold A"] * 3
    prompt = server.requests[0].prompt_text
    for i in (1, 2, 3):
        assert f"- Step {i}: answer B does not match gold A" in prompt


async def test_refiner_ignores_flags_on_steps_the_trace_lacks(fake_llm) -> None:
    _, client = fake_llm(lambda req: "Step 3: Ferritin confirms it.\nAnswer: A")
    verdict = Verdict(passed=False, step_flags={3: "wrong test", 9: "no such step"}, verifier="judge")
    new = await Refiner(Agent("refine", CHAT, "mcq_refine", client)).refine(
        ITEM, _original(), verdict, AgentContext()
    )
    assert new.revisions[0].flagged_steps == [3]
    assert new.steps[2].text == "Ferritin confirms it."


async def test_refiner_without_an_answer_in_the_fix_keeps_the_original_answer(fake_llm) -> None:
    _, client = fake_llm(lambda req: "Step 2: Heavy periods cause iron deficiency.")
    original = _original()
    new = await Refiner(Agent("refine", CHAT, "mcq_refine", client)).refine(
        ITEM, original, FLAGGED, AgentContext()
    )
    assert original.answer is not None
    assert new.answer == original.answer
    assert new.steps[1].text == "Heavy periods cause iron deficiency."
    assert new.text.endswith(f"Answer: {original.answer}")


async def test_completion_refiner_continues_the_first_flagged_step(fake_llm) -> None:
    server, client = fake_llm(lambda req: " Heavy periods cause iron deficiency.\nAnswer: A\n###")
    new = await Refiner(Agent("refine", COMPLETION, "mcq_refine", client)).refine(
        ITEM, _original(), FLAGGED, AgentContext(), ["mixed up the causes"]
    )
    prompt = server.requests[0].prompt_text
    assert prompt.endswith("Corrected steps:\nStep 2:")
    assert "Wrong steps: 2 (heavy periods point to iron loss)" in prompt
    assert "Mistakes made in other attempts: mixed up the causes" in prompt
    assert new.steps[1].text == "Heavy periods cause iron deficiency."
    assert new.steps[0].text == "Low MCV means microcytic anemia."
    assert new.answer == "A"


# -- merge_steps ----------------------------------------------------------------------------


def _s(*pairs: tuple[int, str]) -> list[Step]:
    return [Step(index=i, text=t) for i, t in pairs]


def test_merge_replaces_only_flagged() -> None:
    original = _s((1, "a"), (2, "b"), (3, "c"))
    rewritten = _s((1, "A!"), (2, "B!"), (3, "C!"))
    assert merge_steps(original, rewritten, {2}) == _s((1, "a"), (2, "B!"), (3, "c"))


def test_merge_keeps_a_flagged_step_the_fix_left_out() -> None:
    original = _s((1, "a"), (2, "b"))
    assert merge_steps(original, _s((1, "A!")), {1, 2}) == _s((1, "A!"), (2, "b"))


def test_merge_appends_steps_past_the_end() -> None:
    original = _s((1, "a"), (2, "b"))
    rewritten = _s((2, "B!"), (3, "new"), (4, "newer"))
    assert merge_steps(original, rewritten, {2}) == _s((1, "a"), (2, "B!"), (3, "new"), (4, "newer"))


def test_merge_with_no_original_steps_takes_the_rewrite() -> None:
    assert merge_steps([], _s((1, "x"), (2, "y")), {1}) == _s((1, "x"), (2, "y"))


def test_merge_with_empty_rewrite_keeps_the_original() -> None:
    original = _s((1, "a"), (2, "b"))
    assert merge_steps(original, [], {1, 2}) == original


def _unused(req: FakeRequest) -> str:  # pragma: no cover - keeps the import meaningful for typing
    return req.prompt_text


async def test_a_fake_routes_on_the_calling_agent_and_node_not_the_prompt(fake_llm) -> None:
    def respond(req: FakeRequest) -> str:
        return "Step 1: Ferritin.\nAnswer: A" if req.agent == "expert" else "Step 1: Unsure.\nAnswer: C"

    fake, client = fake_llm(respond)
    expert = Agent("expert", CHAT, "mcq_cot", client)
    novice = Agent("novice", CHAT, "mcq_cot", client)  # same template, same prompt
    _, ctx = _events()
    (good,) = await Generator(expert).generate(ITEM, ctx)
    (bad,) = await Generator(novice).generate(ITEM, AgentContext(item_id=ITEM.id))
    assert (good.answer, bad.answer) == ("A", "C")
    assert [(r.agent, r.node) for r in fake.requests] == [("expert", "gen"), ("novice", None)]
    assert fake.requests[0].prompt_text == fake.requests[1].prompt_text
    assert "expert" not in str(fake.requests[0].body)  # the caller's name is not in the body
