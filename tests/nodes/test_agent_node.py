"""The ``agent`` node in a graph: built from a recipe, its samples run through the engine with
scripted replies on the in-process mock endpoint, and its turns and tool calls reach the
trajectory as typed events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import medloom
from medloom.core.errors import GraphError
from medloom.core.trajectory import decode_line
from medloom.graphs.build import build_graph
from medloom.llm.transport import MockTransport, TransportRequest, TransportResponse
from tests.helpers import REPO


def _spec(**agent: Any) -> dict[str, Any]:
    return {
        "name": "agent_node",
        "models": {"m": {"model": "scripted", "mode": "chat"}},
        "endpoints": [{"name": "mock", "base_url": "http://mock/v1"}],
        "dataset": {"path": str(REPO / "configs" / "data" / "demo_mcq.jsonl"), "limit": 2},
        "nodes": {
            "answer": {"type": "agent", "model": "m", "tools": ["kg"], "samples": 2, **agent},
            "check": {"type": "verifier", "verifiers": [{"check": "mcq_answer"}]},
        },
        "edges": [{"from": "answer", "to": "check"}],
    }


def _scripted(request: TransportRequest) -> TransportResponse:
    """First turn: look the KG up; second turn: answer with the gold letter from the user turn."""
    body = dict(request.body or {})
    messages = body["messages"]
    if messages[-1]["role"] != "tool":
        call = {
            "id": "c1",
            "type": "function",
            "function": {"name": "find_entity", "arguments": '{"name": "prostate cancer"}'},
        }
        message: dict[str, Any] = {"role": "assistant", "content": "Look it up.", "tool_calls": [call]}
    else:
        gold = "B" if "peaked T waves" in messages[1]["content"] else "C"
        message = {"role": "assistant", "content": f"<answer>{gold}</answer>"}
    usage = {"prompt_tokens": 20, "completion_tokens": 5}
    return TransportResponse.of_json({"choices": [{"index": 0, "message": message}], "usage": usage})


def test_agent_node_runs_in_a_graph_and_records_its_conversation(tmp_path: Path) -> None:
    result = medloom.run(_spec(), runs_dir=tmp_path, transport=MockTransport(_scripted))
    assert result.report.kept == 2 and result.report.calls == 8  # 2 items × 2 samples × 2 turns
    events = [decode_line(line) for line in (result.run_dir / "trajectories.jsonl").read_text().splitlines()]
    types = [getattr(e, "type", "") for e in events]
    assert (
        types.count("agent_turn") == 8 and types.count("tool_call") == 4 and types.count("tool_result") == 4
    )
    traces = [e.trace for e in events if getattr(e, "type", "") == "trace"]
    assert {t.answer for t in traces} == {"B", "C"}
    roles = [m["role"] for m in traces[0].meta["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    found = json.loads(traces[0].meta["messages"][3]["content"])  # find_entity's result from the demo KG
    assert found and {"name", "type", "degree"} <= set(found[0])


def test_unknown_tool_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(GraphError, match="unknown tool 'web'") as err:
        build_graph(medloom.GraphSpec.model_validate(_spec(tools=["kg", "web"])))
    assert "tools.1" in str(err.value)


def test_samples_of_an_item_are_distinct_requests(tmp_path: Path) -> None:
    seeds: list[object] = []

    def record(request: TransportRequest) -> TransportResponse:
        seeds.append(dict(request.body or {}).get("seed"))
        return _scripted(request)

    medloom.run(
        _spec(samples=3, temperatures=[0.7]), runs_dir=tmp_path, transport=MockTransport(record), limit=1
    )
    assert set(seeds) == {None, 1, 2}  # sample 0 keeps the recipe's seed, later ones add their index
