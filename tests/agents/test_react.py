"""The tool-using agent through both protocols, with scripted replies on the in-process mock
endpoint: tool calls and their results, tool errors, bad JSON arguments, exceeding bounds."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from medloom.agents.agent import Agent, ModelRef, Sampling
from medloom.agents.context import AgentContext
from medloom.agents.react import Bounds, TokenBudget, ToolAgent
from medloom.agents.tools.base import ToolBox, ToolEnv, build_tools, tool
from medloom.agents.tools.mcp_tools import close_all
from medloom.core.events import AgentTurn, Event, LLMCall, ToolCalled, ToolReturned
from medloom.core.records import Item
from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig
from medloom.llm.transport import MockTransport, TransportRequest, TransportResponse

ITEM = Item(id="q1", index=0, question="Which drug resembles Goserelin?")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def broken(x: str) -> str:
    """Always fails."""
    raise RuntimeError("database offline")


def scripted(replies: list[dict[str, Any]], seen: list[dict[str, Any]]) -> MockTransport:
    """Answers each request with the next scripted reply (a chat ``message`` or a completion ``text``)."""
    queue = iter(replies)

    def handler(request: TransportRequest) -> TransportResponse:
        body = dict(request.body or {})
        seen.append(body)
        reply = next(queue)
        usage = {"prompt_tokens": 10, "completion_tokens": reply.pop("tokens", 5)}
        if "messages" in body:
            message = {"role": "assistant", "content": reply.get("content")} | (
                {"tool_calls": reply["tool_calls"]} if "tool_calls" in reply else {}
            )
            choice = {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if "tool_calls" in reply else "stop",
            }
        else:
            choice = {"index": 0, "text": reply["text"], "finish_reason": "stop"}
        return TransportResponse.of_json({"choices": [choice], "usage": usage})

    return MockTransport(handler)


def native_call(name: str, arguments: str, call_id: str = "c1") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def calls(name: str, arguments: dict[str, Any], call_id: str = "c1") -> dict[str, Any]:
    """A scripted chat turn that calls one tool."""
    return {"content": "", "tool_calls": [native_call(name, json.dumps(arguments), call_id)]}


def run_agent(
    mode: str,
    replies: list[dict[str, Any]],
    *,
    tools: list[Any] | None = None,
    bounds: Bounds | None = None,
    budget: int | None = None,
) -> tuple[Any, list[Event], list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    events: list[Event] = []

    async def go() -> Any:
        client = LLMClient([EndpointConfig(base_url="http://mock/v1")], transport=scripted(replies, seen))
        async with client:
            agent = Agent("solver", ModelRef(alias="m", served="m", mode=mode), "agent_react", client,  # type: ignore[arg-type]
                          sampling=Sampling(max_tokens=64))  # fmt: skip
            runner = ToolAgent(
                agent, ToolBox(tools if tools is not None else [add, broken]), bounds or Bounds()
            )
            ctx = AgentContext(item_id="q1", node="answer", emit=events.append)
            return await runner.run(ITEM, {"question": ITEM.question, "options": {}, "data": {}}, ctx,
                                    budget=TokenBudget(budget))  # fmt: skip

    return asyncio.run(go()), events, seen


def test_chat_protocol_calls_native_tools_and_answers() -> None:
    trace, events, seen = run_agent(
        "chat",
        [
            {"content": "I will add.", "tool_calls": [native_call("add", '{"a": 2, "b": 3}')]},
            {"content": "The sum is 5. <answer>5</answer>"},
        ],
    )
    assert trace.answer == "5"
    assert (
        trace.meta["turns"] == 2 and trace.meta["tool_calls"] == 1 and trace.meta["stop_reason"] == "answer"
    )
    assert [t["function"]["name"] for t in seen[0]["tools"]] == ["add", "broken"]
    # the second request carries the assistant's call and the tool's answer, in the OpenAI schema
    assistant, tool_msg = seen[1]["messages"][-2:]
    assert assistant["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert tool_msg == {"role": "tool", "content": "5", "tool_call_id": "c1"}
    assert [m["role"] for m in trace.meta["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    kinds = [type(e) for e in events]
    assert kinds == [LLMCall, AgentTurn, ToolCalled, ToolReturned, LLMCall, AgentTurn]
    assert isinstance(events[3], ToolReturned) and events[3].content == "5" and not events[3].error


def test_chat_bad_json_arguments_and_tool_errors_are_results_the_agent_reads() -> None:
    trace, events, seen = run_agent(
        "chat",
        [
            {"content": "", "tool_calls": [native_call("add", '{"a": 2, "b":', "c1")]},
            {"content": "", "tool_calls": [native_call("add", '{"a": "two", "b": 3}', "c2")]},
            {
                "content": "",
                "tool_calls": [native_call("broken", '{"x": "y"}', "c3"), native_call("nope", "{}", "c4")],
            },
            {"content": "<answer>unknown</answer>"},
        ],
    )
    results = [e for e in events if isinstance(e, ToolReturned)]
    assert all(r.error for r in results)
    assert "not valid JSON" in results[0].content
    assert "at a" in results[1].content and "'two' is not of type 'integer'" in results[1].content
    assert "database offline" in results[2].content
    assert "unknown tool 'nope'" in results[3].content
    last_request = seen[-1]["messages"]
    assert [m["content"] for m in last_request if m["role"] == "tool"] == [r.content for r in results]
    assert trace.answer == "unknown" and trace.meta["tool_errors"] == 4


def test_completion_text_protocol() -> None:
    trace, _, seen = run_agent(
        "completion",
        [
            {"text": 'I need the sum.</think>\n<tool_call>{"name": "add", "arguments": {"a": 1, "b": 41}}'},
            {"text": "<think>It is 42.</think>\n<answer>42"},
        ],
    )
    assert trace.answer == "42" and trace.meta["protocol"] == "completion"
    assert "</tool_call>" in seen[0]["stop"] and "<tool_response>" in seen[0]["stop"]
    second_prompt = seen[1]["prompt"]
    assert second_prompt.startswith(seen[0]["prompt"])
    assert second_prompt.endswith('{"a": 1, "b": 41}}\n</tool_call>\n<tool_response>\n42\n</tool_response>\n')
    messages = trace.meta["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 1, "b": 41}'}
    assert messages[2]["content"] == "<think>I need the sum.</think>"  # the prompt opened the <think>
    assert messages[4]["content"] == "<think>It is 42.</think>\n<answer>42</answer>"


def test_completion_invalid_tool_call_json_is_reported_back() -> None:
    trace, events, seen = run_agent(
        "completion",
        [{"text": "<tool_call>{name: add}"}, {"text": "<answer>none"}],
    )
    assert "<tool_response>\nerror: the tool call is not valid JSON" in seen[1]["prompt"]
    assert not any(isinstance(e, ToolCalled) for e in events)
    assert trace.answer == "none" and trace.meta["tool_errors"] == 1 and trace.meta["tool_calls"] == 0


@pytest.mark.parametrize(
    ("bounds", "budget", "reason", "calls"),
    [
        (Bounds(max_turns=2), None, "max_turns", 2),
        (Bounds(max_tool_calls=1), None, "max_tool_calls", 1),
        (Bounds(), 30, "token_budget", 2),
    ],
)
def test_bounds_stop_the_loop(bounds: Bounds, budget: int | None, reason: str, calls: int) -> None:
    call = {"text": '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}', "tokens": 10}
    trace, events, _ = run_agent("completion", [dict(call) for _ in range(5)], bounds=bounds, budget=budget)
    assert trace.answer is None and trace.meta["stop_reason"] == reason
    assert trace.parse_error == f"no final answer ({reason})"
    assert sum(isinstance(e, ToolCalled) for e in events) == calls


def test_python_function_schema_and_registered_tool_sets() -> None:
    assert add.parameters == {
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
        "type": "object",
    }
    with pytest.raises(KeyError, match="unknown tool 'nope'"):
        build_tools(["nope"], ToolEnv())


def test_kg_tools_answer_from_the_demo_graph() -> None:
    box = ToolBox(build_tools(["kg"], ToolEnv()))
    trace, events, _ = run_agent(
        "chat",
        [
            calls("neighbours", {"entity": "goserelin", "relation": "resembles"}),
            calls("shortest_path", {"source": "Goserelin", "target": "prostate cancer"}, "c2"),
            calls("neighbours", {"entity": "no such thing xyz"}, "c3"),
            {"content": "<answer>Degarelix</answer>"},
        ],
        tools=list(box.tools.values()),
    )  # fmt: skip
    results = [e for e in events if isinstance(e, ToolReturned)]
    assert "Goserelin (Compound) -resembles-> Degarelix (Compound)" in results[0].content
    assert "Goserelin -treats-> prostate cancer" in results[1].content
    assert results[2].error and "no entity named" in results[2].content
    assert trace.answer == "Degarelix"


def test_mcp_server_tools_are_called_over_stdio() -> None:
    server = Path(__file__).parent / "data" / "mcp_dose_server.py"
    tools = build_tools(
        [{"mcp": {"command": sys.executable, "args": [str(server)], "prefix": "calc_"}}], ToolEnv()
    )
    try:
        assert [t.name for t in tools] == ["calc_dose_mg"]
        assert tools[0].parameters["required"] == ["weight_kg", "mg_per_kg"]
        trace, events, _ = run_agent(
            "chat",
            [
                calls("calc_dose_mg", {"weight_kg": 70, "mg_per_kg": 0.5}),
                calls("calc_dose_mg", {"weight_kg": -1, "mg_per_kg": 0.5}, "c2"),
                calls("calc_dose_mg", {"weight_kg": "heavy", "mg_per_kg": 0.5}, "c3"),
                {"content": "<answer>35 mg</answer>"},
            ],
            tools=tools,
        )
    finally:
        close_all()
    results = [e for e in events if isinstance(e, ToolReturned)]
    assert (results[0].content, results[0].error) == ("35 mg", False)
    assert results[1].error and "weight must be positive" in results[1].content
    assert results[2].error and "invalid arguments" in results[2].content  # checked before the server
    assert trace.answer == "35 mg"
