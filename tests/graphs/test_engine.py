"""The engine over a small graph built in code, against the fake OpenAI server."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from medloom.agents.context import AgentContext
from medloom.agents.templates import TemplateLibrary
from medloom.core.events import (
    ItemFinished,
    ItemStarted,
    LLMCall,
    RowSkipped,
    Selection,
    TraceDropped,
    TraceRevised,
    VerdictGiven,
)
from medloom.core.records import Item, Trace, Verdict
from medloom.core.trajectory import decode_event
from medloom.graphs.build import build_graph
from medloom.graphs.engine import Engine
from medloom.graphs.runtime import Runtime, instantiate, resolve_models
from medloom.graphs.spec import GraphSpec
from medloom.nodes.verifier import VerifierRun
from medloom.testing import FakeRequest, Reply

OPTIONS = {"A": "Propranolol", "B": "Levothyroxine", "C": "Radioactive iodine"}


def item(n: int, answer: str = "A") -> Item:
    return Item(
        id=f"q{n}",
        index=n,
        question=f"Case {n}: a patient with thyrotoxic palpitations. Best initial drug?",
        options=OPTIONS,
        answer=answer,
        data={"id": f"q{n}", "topic": "endocrine"},
    )


WRONG = "Step 1: The thyroid is overactive.\nStep 2: Levothyroxine treats thyroid disease.\nAnswer: B"
RIGHT = "Step 1: The thyroid is overactive.\nStep 2: A beta blocker controls the symptoms.\nAnswer: A"
FIXED = "Step 2: Propranolol blocks the adrenergic symptoms.\nAnswer: A"
NOT_FIXED = "Step 2: Levothyroxine is still my choice.\nAnswer: B"


def is_refine(req: FakeRequest) -> bool:
    return req.node == "refine"  # the in-process fake sees the calling node, not just the prompt


def is_judge(req: FakeRequest) -> bool:
    return req.node == "judge"


GEN = {"type": "generator", "models": ["m"], "template": "mcq_cot"}
VERIFY = {
    "type": "verifier",
    "verifiers": [{"check": "format"}, {"check": "mcq_answer"}],
}
REFINE = {"type": "refiner", "model": "m", "max_rounds": 2}
LOOP_EDGES: list[Any] = [
    "gen -> verify",
    {"from": "verify", "to": "refine", "when": "failed"},
    "refine -> verify",
    {"from": "verify", "to": "select", "when": "passed"},
]


def make_spec(nodes: dict[str, Any], edges: list[Any], **extra: Any) -> GraphSpec:
    return GraphSpec.model_validate(
        {
            "name": "engine-test",
            "models": {"m": {"model": "fake-model"}},
            "dataset": {"path": "unused.jsonl"},
            "nodes": nodes,
            "edges": edges,
            **extra,
        }
    )


def loop_spec(max_rounds: int = 2, select: str = "all", **gen: Any) -> GraphSpec:
    nodes = {
        "gen": {**GEN, **gen},
        "verify": VERIFY,
        "refine": {**REFINE, "max_rounds": max_rounds},
        "select": {"type": "selector", "method": select},
    }
    return make_spec(nodes, LOOP_EDGES, output={"passthrough": ["topic"]})


async def runtime(spec: GraphSpec, client) -> Runtime:  # type: ignore[no-untyped-def]
    compiled = build_graph(spec)
    models = await resolve_models(spec, client)
    return instantiate(compiled, client, models, TemplateLibrary())


async def run(rt: Runtime, items: list[Any], concurrency: int = 4, **kw: Any) -> list[Any]:
    events: list[Any] = []
    engine = Engine(rt, events.append, run_id="run-test", concurrency=concurrency)
    await engine.run(list(enumerate(items)), **kw)
    return events


def ends(events: list[Any]) -> dict[str, ItemFinished]:
    finished = [e for e in events if isinstance(e, ItemFinished)]
    counts = Counter(e.item_id for e in finished)
    assert all(c == 1 for c in counts.values()), counts
    return {e.item_id: e for e in finished}


def assert_one_end_per_item(events: list[Any], item_ids: list[str]) -> None:
    assert sorted(ends(events)) == sorted(item_ids)
    for item_id in item_ids:
        mine = [e for e in events if e.item_id == item_id]
        assert isinstance(mine[0], ItemStarted)
        assert isinstance(mine[-1], ItemFinished)


def assert_stats_consistent(end: ItemFinished, verifiers: tuple[str, ...] = ("verify",)) -> None:
    for name in verifiers:
        s = end.stats[name]
        assert s.traces_in == s.passed + s.failed == s.traces_out
        by_round = Counter()
        for counts in s.rounds.values():
            by_round.update(counts)
        assert (by_round["passed"], by_round["failed"]) == (s.passed, s.failed)
    if "refine" in end.stats:
        s = end.stats["refine"]
        assert s.traces_in == s.traces_out + s.dropped
        assert s.calls == s.traces_out


async def test_failing_trace_is_refined_and_kept(fake_llm) -> None:
    server, client = fake_llm(lambda req: FIXED if is_refine(req) else WRONG)
    events = await run(await runtime(loop_spec(), client), [item(1)])

    assert_one_end_per_item(events, ["q1"])
    end = ends(events)["q1"]
    assert (end.status, end.node, end.reason) == ("kept", None, None)
    (row,) = end.rows
    assert row["rounds"] == 1
    assert row["predicted"] == "A" and row["answer"] == "A"
    assert row["trace_id"] == "q1/gen/m/t0/0+r1"
    assert row["steps"] == ["The thyroid is overactive.", "Propranolol blocks the adrenergic symptoms."]
    assert [v["passed"] for v in row["verdicts"]] == [True]
    assert row["run_id"] == "run-test"
    assert row["source_fields"] == {"topic": "endocrine"}

    stats = end.stats
    assert (stats["gen"].traces_out, stats["gen"].calls) == (1, 1)
    v = stats["verify"]
    assert (v.traces_in, v.passed, v.failed) == (2, 1, 1)
    assert v.rounds == {"0": {"passed": 0, "failed": 1}, "1": {"passed": 1, "failed": 0}}
    r = stats["refine"]
    assert (r.traces_in, r.traces_out, r.dropped, r.calls) == (1, 1, 0, 1)
    assert (stats["select"].traces_in, stats["select"].traces_out) == (1, 1)
    assert stats["gen"].prompt_tokens > 0 and stats["refine"].completion_tokens > 0
    assert_stats_consistent(end)

    verdicts = [e for e in events if isinstance(e, VerdictGiven)]
    assert [(e.trace_id, e.verdict.passed, e.node) for e in verdicts] == [
        ("q1/gen/m/t0/0", False, "verify"),
        ("q1/gen/m/t0/0+r1", True, "verify"),
    ]
    assert verdicts[0].verdict.failed_by == ["mcq_answer"]
    (revised,) = [e for e in events if isinstance(e, TraceRevised)]
    assert revised.revision.flagged_steps == [1, 2]  # the answer check flags no step: all are rewritten
    assert server.request_count == 2


async def test_refiner_that_never_fixes_rejects_at_the_refiner(fake_llm) -> None:
    server, client = fake_llm(lambda req: NOT_FIXED if is_refine(req) else WRONG)
    events = await run(await runtime(loop_spec(max_rounds=2), client), [item(1)])

    end = ends(events)["q1"]
    assert end.status == "rejected"
    assert end.node == "refine"
    assert end.reason is not None
    assert end.reason.startswith("still failing after 2 refinement rounds: ")
    assert "mcq_answer: fail" in end.reason
    assert end.reason_code == "still failing mcq_answer after 2 refinement rounds"
    # The code survives the trip through the trajectory file.
    assert decode_event(end.model_dump_json()).reason_code == end.reason_code  # type: ignore[union-attr]
    assert end.rows == []

    v, r = end.stats["verify"], end.stats["refine"]
    assert (v.traces_in, v.passed, v.failed) == (3, 0, 3)
    assert set(v.rounds) == {"0", "1", "2"}
    assert (r.traces_in, r.traces_out, r.dropped, r.calls) == (3, 2, 1, 2)
    assert_stats_consistent(end)
    (dropped,) = [e for e in events if isinstance(e, TraceDropped)]
    assert (dropped.node, dropped.trace_id) == ("refine", "q1/gen/m/t0/0+r1+r2")
    assert server.request_count == 3  # one generation, two refinements
    assert_one_end_per_item(events, ["q1"])


async def test_refiner_hears_what_other_samples_got_wrong(fake_llm) -> None:
    def respond(req: FakeRequest) -> Any:
        if is_refine(req):
            return FIXED
        return [RIGHT, WRONG.replace("Answer: B", "Answer: C"), WRONG]

    server, client = fake_llm(respond)
    events = await run(await runtime(loop_spec(samples=3), client), [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept"
    assert sorted(r["trace_id"] for r in end.rows) == [
        "q1/gen/m/t0/0",
        "q1/gen/m/t0/1+r1",
        "q1/gen/m/t0/2+r1",
    ]
    refine_prompts = [r.prompt_text for r in server.requests if is_refine(r)]
    assert len(refine_prompts) == 2
    wrong_c = "answer C) Radioactive iodine does not match gold A) Propranolol"
    wrong_b = "answer B) Levothyroxine does not match gold A) Propranolol"
    by_trace = {("Radioactive" if "Answer: C" in p else "Levo"): p for p in refine_prompts}
    # Each refinement is told the other sample's mistake, under "other attempts".
    other_b = by_trace["Radioactive"].split("Mistakes made in other attempts")[1]
    assert wrong_b in other_b and wrong_c not in other_b
    other_c = by_trace["Levo"].split("Mistakes made in other attempts")[1]
    assert wrong_c in other_c and wrong_b not in other_c
    assert_stats_consistent(end)


async def test_a_lone_trace_is_not_told_its_own_earlier_mistakes(fake_llm) -> None:
    server, client = fake_llm(lambda req: NOT_FIXED if is_refine(req) else WRONG)
    await run(await runtime(loop_spec(max_rounds=2), client), [item(1)])
    prompts = [r.prompt_text for r in server.requests if is_refine(r)]
    assert len(prompts) == 2
    assert all("other attempts" not in p for p in prompts)
    # The refiner sees only the failing check's reason, not the checks that passed.
    assert all("- Step 2: mcq_answer: fail (answer B) Levothyroxine" in p for p in prompts)
    assert all("format: pass" not in p for p in prompts)


async def test_share_reasons_off(fake_llm) -> None:
    server, client = fake_llm(lambda req: FIXED if is_refine(req) else [WRONG, WRONG.replace("B", "C")])
    spec = loop_spec(samples=2)
    spec.nodes["refine"].share_reasons = False  # type: ignore[union-attr]
    await run(await runtime(spec, client), [item(1)])
    prompts = [r.prompt_text for r in server.requests if is_refine(r)]
    assert len(prompts) == 2 and all("other attempts" not in p for p in prompts)


async def test_fatal_llm_error_fails_one_item_and_others_complete(fake_llm) -> None:
    bad = item(2)

    def respond(req: FakeRequest) -> Any:
        if bad.question in req.prompt_text:
            return Reply.error(400, message="prompt is too long")
        return FIXED if is_refine(req) else RIGHT

    server, client = fake_llm(respond)
    items = [item(1), bad, item(3)]
    events = await run(await runtime(loop_spec(), client), items, concurrency=2)

    assert_one_end_per_item(events, ["q1", "q2", "q3"])
    by_id = ends(events)
    assert by_id["q1"].status == by_id["q3"].status == "kept"
    failed = by_id["q2"]
    assert failed.status == "failed"
    assert failed.node == "gen"
    assert failed.reason is not None and "HTTP 400" in failed.reason and "prompt is too long" in failed.reason
    assert failed.rows == []
    # A 400 is not retried.
    assert sum(bad.question in r.prompt_text for r in server.requests) == 1
    errors = [e for e in events if isinstance(e, LLMCall) and e.error]
    assert [(e.item_id, e.node) for e in errors] == [("q2", "gen")]


async def test_llm_error_inside_the_loop_names_the_node(fake_llm) -> None:
    def respond(req: FakeRequest) -> Any:
        return Reply.error(404, message="model gone") if is_refine(req) else WRONG

    _, client = fake_llm(respond)
    events = await run(await runtime(loop_spec(), client), [item(1)])
    end = ends(events)["q1"]
    assert (end.status, end.node) == ("failed", "refine")
    assert end.reason is not None and end.reason.startswith("HTTP 404")
    assert end.stats["verify"].failed == 1  # work done before the failure is still counted


async def test_internal_error_fails_the_item_with_its_type(fake_llm) -> None:
    class Broken:
        name = "broken"

        async def verify(self, item: Item, trace: Trace, ctx: AgentContext) -> Verdict:
            raise RuntimeError("boom")

    _, client = fake_llm(lambda req: RIGHT)
    rt = await runtime(loop_spec(), client)
    rt.nodes["verify"] = VerifierRun(Broken())
    events = await run(rt, [item(1), item(2)])
    assert_one_end_per_item(events, ["q1", "q2"])
    for end in ends(events).values():
        assert (end.status, end.node, end.reason) == ("failed", "verify", "RuntimeError: boom")


async def test_judge_scores_and_top_k_keeps_the_best(fake_llm) -> None:
    def respond(req: FakeRequest) -> Any:
        if is_judge(req):
            score = 5 if "A beta blocker controls the symptoms" in req.prompt_text else 3
            return f'{{"verdict": "Correct", "score": {score}, "wrong_steps": [], "reason": "ok"}}'
        if is_refine(req):
            return FIXED
        return [WRONG, RIGHT]

    nodes = {
        "gen": {**GEN, "samples": 2},
        "verify": VERIFY,
        "refine": REFINE,
        "judge": {"type": "verifier", "verifiers": [{"judge": "m"}]},
        "select": {"type": "selector", "method": "top_k", "k": 1},
    }
    edges = [
        "gen -> verify",
        {"from": "verify", "to": "judge", "when": "passed"},
        {"from": "verify", "to": "refine", "when": "failed"},
        "refine -> verify",
        "judge -> select",
    ]
    server, client = fake_llm(respond)
    events = await run(await runtime(make_spec(nodes, edges), client), [item(1)])

    end = ends(events)["q1"]
    assert end.status == "kept"
    (row,) = end.rows
    assert row["trace_id"] == "q1/gen/m/t0/1"
    assert row["score"] == 5.0 and row["rounds"] == 0
    assert [v["verifier"] for v in row["verdicts"]] == ["verify", "judge:judge"]
    (selection,) = [e for e in events if isinstance(e, Selection)]
    assert selection.selected == ["q1/gen/m/t0/1"]
    assert sorted(selection.candidates) == ["q1/gen/m/t0/0+r1", "q1/gen/m/t0/1"]
    assert selection.detail["scores"] == {"q1/gen/m/t0/1": 5.0, "q1/gen/m/t0/0+r1": 3.0}
    j, s = end.stats["judge"], end.stats["select"]
    assert (j.traces_in, j.passed, j.failed, j.calls) == (2, 2, 0, 2)
    assert (s.traces_in, s.traces_out, s.dropped) == (2, 1, 1)
    assert_stats_consistent(end, ("verify", "judge"))
    # The trace the selector left out is not reported as a separate drop event.
    assert not [e for e in events if isinstance(e, TraceDropped)]
    assert server.request_count == 4  # generate, refine, two judgements


async def test_trace_failing_with_no_matching_edge_is_rejected_at_the_verifier(fake_llm) -> None:
    nodes = {"gen": GEN, "verify": VERIFY, "select": {"type": "selector", "method": "all"}}
    edges = ["gen -> verify", {"from": "verify", "to": "select", "when": "passed"}]
    _, client = fake_llm(lambda req: WRONG)
    events = await run(await runtime(make_spec(nodes, edges), client), [item(1)])
    end = ends(events)["q1"]
    assert (end.status, end.node) == ("rejected", "verify")
    assert end.reason is not None and "does not match gold" in end.reason
    assert end.reason_code == "failed mcq_answer"
    assert end.stats["verify"].dropped == 1


async def test_bad_rows_are_skipped_and_done_items_not_rerun(fake_llm) -> None:
    server, client = fake_llm(lambda req: RIGHT)
    rt = await runtime(loop_spec(), client)
    events = await run(rt, [item(0), ValueError("line 2: invalid JSON"), item(2)], done={"q0"})
    (skipped,) = [e for e in events if isinstance(e, RowSkipped)]
    assert (skipped.item_id, skipped.index, skipped.reason) == ("row-1", 1, "line 2: invalid JSON")
    assert_one_end_per_item(events, ["q2"])
    assert server.request_count == 1


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_many_items_each_end_once(fake_llm, concurrency: int) -> None:
    def respond(req: FakeRequest) -> Any:
        if is_refine(req):
            return FIXED
        return WRONG if "Case 1:" in req.prompt_text or "Case 4:" in req.prompt_text else RIGHT

    _, client = fake_llm(respond)
    items = [item(n) for n in range(6)]
    events = await run(await runtime(loop_spec(), client), items, concurrency=concurrency)
    assert_one_end_per_item(events, [i.id for i in items])
    by_id = ends(events)
    assert {k: e.status for k, e in by_id.items()} == {i.id: "kept" for i in items}
    assert {k: e.rows[0]["rounds"] for k, e in by_id.items()} == {
        "q0": 0,
        "q1": 1,
        "q2": 0,
        "q3": 0,
        "q4": 1,
        "q5": 0,
    }
    for end in by_id.values():
        assert_stats_consistent(end)
