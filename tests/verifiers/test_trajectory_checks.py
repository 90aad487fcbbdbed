"""Rejection-sampling filters on agent trajectories, and the hint helpers of the recipe."""

from __future__ import annotations

from typing import Any

from medloom.core.records import Item, Trace
from medloom.kg.paths import Hop, KGPath, PathNode
from medloom.ops.medresearcher import leaks, masked_hints
from medloom.verifiers.trajectory import AgentAnswer, AgentTurns, ToolUse

ITEM = Item(id="i", index=0, question="q?", options={"A": "Goserelin", "B": "Degarelix"}, answer="B")


def trace(answer: str | None = "B", turns: int = 3, messages: list[dict[str, Any]] | None = None) -> Trace:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    default = [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "x", "tool_call_id": "c1"},
    ]
    meta = {"turns": turns, "messages": default if messages is None else messages, "stop_reason": "answer"}
    return Trace(id="t", item_id="i", node="answer", text="", answer=answer, meta=meta)


def test_turns_and_tool_use_filters() -> None:
    assert AgentTurns(min_turns=3).check(ITEM, trace(turns=3)).passed
    assert not AgentTurns(min_turns=3).check(ITEM, trace(turns=2)).passed
    assert ToolUse(max_calls=1).check(ITEM, trace()).passed
    unanswered = trace(messages=trace().meta["messages"][:1])
    verdict = ToolUse().check(ITEM, unanswered)
    assert not verdict.passed and "without a response: ['c1']" in verdict.reason
    assert not ToolUse(max_calls=0).check(ITEM, trace()).passed
    assert not ToolUse(min_calls=1).check(ITEM, trace(messages=[])).passed


def test_answer_filter_accepts_the_letter_or_the_text() -> None:
    check = AgentAnswer()
    assert check.check(ITEM, trace("B")).passed
    assert check.check(ITEM, trace("Degarelix")).passed
    assert not check.check(ITEM, trace("Goserelin")).passed
    assert not check.check(ITEM, trace(None)).passed
    open_item = Item(id="o", index=0, question="q?", answer="prostate cancer")
    assert check.check(open_item, trace("It is prostate cancer.")).passed


def test_masked_hints_follow_the_stored_direction() -> None:
    a, b, c = (PathNode(id=x, name=x, type="T") for x in "abc")
    path = KGPath(
        nodes=[a, b, c],
        hops=[
            Hop(source=a, relation="treats", target=b),
            Hop(source=b, relation="binds", target=c, forward=False),
        ],
    )
    assert masked_hints(path) == ["([MASK1], treats, [MASK2])", "([MASK3], binds, [MASK2])"]


def test_leaks_find_hint_text_mask_tokens_and_marker_words() -> None:
    hints = ["([MASK1], treats, [MASK2])"]
    assert leaks("I look up what treats the disease.", hints, ["hint"]) == []
    assert leaks("As the hints say ([MASK1], treats, [MASK2])", hints, ["hint"]) == [
        hints[0],
        "[MASK1]",
        "[MASK2]",
        "hint",
    ]
