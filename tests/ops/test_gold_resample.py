"""Gold-label resampling: stops at the first gold match, gives up after max_tries."""

from __future__ import annotations

from typing import Any

from medloom.core.events import LLMCall, Note, TraceDropped
from medloom.testing import FakeRequest
from tests.graphs.test_engine import GEN, RIGHT, WRONG, ends, item, make_spec, run, runtime

SELECT = {"type": "selector", "method": "all"}


def resample(**params: Any) -> dict[str, Any]:
    return {"type": "step", "op": "gold_resample", "model": "m", "template": "mcq_cot", "params": params}


async def test_stops_at_the_first_gold_match(fake_llm) -> None:
    replies = iter([WRONG, WRONG, RIGHT, RIGHT])
    seeds: list[int | None] = []

    def reply(req: FakeRequest) -> str:
        seeds.append(req.body.get("seed"))
        return next(replies)

    server, client = fake_llm(reply)
    spec = make_spec({"teach": resample(max_tries=8, seed=10), "out": SELECT}, ["teach -> out"])
    events = await run(await runtime(spec, client), [item(1)])
    end = ends(events)["q1"]
    assert end.status == "kept"
    (row,) = end.rows
    assert row["predicted"] == "A" and row["trace_id"] == "q1/teach/try3"
    assert server.request_count == 3
    assert seeds == [10, 11, 12]  # each try its own seed: distinct requests, distinct cache keys
    assert all(e.request.temperature == 0.7 for e in events if isinstance(e, LLMCall))
    (note,) = [e for e in events if isinstance(e, Note)]
    assert note.kind == "resample"
    assert note.data == {"matched": True, "tries": 3, "answers": ["B", "B", "A"], "gold": "A"}
    dropped = [e.trace_id for e in events if isinstance(e, TraceDropped)]
    assert dropped == ["q1/teach/try1", "q1/teach/try2"]


async def test_gives_up_after_max_tries(fake_llm) -> None:
    server, client = fake_llm(lambda req: WRONG)
    spec = make_spec({"teach": resample(max_tries=3), "out": SELECT}, ["teach -> out"])
    events = await run(await runtime(spec, client), [item(1)])
    end = ends(events)["q1"]
    assert (end.status, end.node, end.reason_code) == ("rejected", "teach", "no gold match in 3 tries")
    assert end.reason is not None and "in 3 tries" in end.reason
    assert server.request_count == 3
    (note,) = [e for e in events if isinstance(e, Note)]
    assert note.data["matched"] is False and note.data["answers"] == ["B", "B", "B"]


async def test_passes_matching_inputs_without_resampling(fake_llm) -> None:
    answers = iter([RIGHT, WRONG])
    server, client = fake_llm(lambda req: next(answers))
    spec = make_spec(
        {"gen": {**GEN, "temperatures": [0.1, 0.2]}, "teach": resample(max_tries=2), "out": SELECT},
        ["gen -> teach", "teach -> out"],
    )
    end = ends(await run(await runtime(spec, client), [item(1)]))["q1"]
    assert end.status == "kept" and len(end.rows) == 1
    assert end.stats["teach"].dropped == 1
    assert server.request_count == 2  # the generator's two calls; no resampling


async def test_free_text_gold_with_a_regex(fake_llm) -> None:
    replies = iter(["The drug is metformin.", "I would say: Metformin!"])
    server, client = fake_llm(lambda req: next(replies))
    free = item(1).model_copy(update={"options": None, "answer": "metformin"})
    spec = make_spec(
        {"teach": resample(max_tries=4, answer_regex=r"say:\s*(\w+)"), "out": SELECT}, ["teach -> out"]
    )
    end = ends(await run(await runtime(spec, client), [free]))["q1"]
    assert end.status == "kept" and end.rows[0]["trace_id"] == "q1/teach/try2"
    assert server.request_count == 2
