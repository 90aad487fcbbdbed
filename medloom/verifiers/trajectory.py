"""Rejection-sampling filters for tool-using agents' trajectories (``Trace.meta`` as the ``agent``
node writes it): enough turns, a bounded number of tool calls each answered, a final answer that
matches the gold one. Put them in one verifier node (``mode: all``) to get each filter's pass rate."""

from __future__ import annotations

from typing import Any

from medloom.core.records import Item, Trace, Verdict
from medloom.core.text import extract_choice, normalise
from medloom.verifiers.base import Check, register_check


def _messages(trace: Trace) -> list[dict[str, Any]]:
    messages = trace.meta.get("messages")
    return messages if isinstance(messages, list) else []


@register_check("agent_turns")
class AgentTurns(Check):
    """At least ``min_turns`` model turns (MedResearcher-R1 keeps multi-turn trajectories)."""

    name = "agent_turns"

    def __init__(self, min_turns: int = 3, max_turns: int | None = None):
        self.min_turns, self.max_turns = min_turns, max_turns

    def check(self, item: Item, trace: Trace) -> Verdict:
        turns = int(trace.meta.get("turns", 0))
        if turns < self.min_turns:
            return self.verdict(False, [f"{turns} turns, fewer than {self.min_turns}"])
        if self.max_turns is not None and turns > self.max_turns:
            return self.verdict(False, [f"{turns} turns, more than {self.max_turns}"])
        return self.verdict(True, [f"{turns} turns"])


@register_check("tool_use")
class ToolUse(Check):
    """Between ``min_calls`` and ``max_calls`` tool calls, every call answered by a tool turn, and
    (unless ``allow_errors``) no call that failed."""

    name = "tool_use"

    def __init__(self, min_calls: int = 1, max_calls: int | None = None, allow_errors: bool = True):
        self.min_calls, self.max_calls, self.allow_errors = min_calls, max_calls, allow_errors

    def check(self, item: Item, trace: Trace) -> Verdict:
        messages = _messages(trace)
        asked = [c["id"] for m in messages for c in m.get("tool_calls") or []]
        answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
        reasons: list[str] = []
        if len(asked) < self.min_calls:
            reasons.append(f"{len(asked)} tool calls, fewer than {self.min_calls}")
        if self.max_calls is not None and len(asked) > self.max_calls:
            reasons.append(f"{len(asked)} tool calls, more than {self.max_calls}")
        unanswered = [c for c in asked if c not in answered]
        if unanswered:
            reasons.append(f"tool calls without a response: {unanswered}")
        errors = int(trace.meta.get("tool_errors", 0))
        if errors and not self.allow_errors:
            reasons.append(f"{errors} tool calls failed")
        return self.verdict(not reasons, reasons or [f"{len(asked)} tool calls, all answered"])


@register_check("agent_answer")
class AgentAnswer(Check):
    """A non-empty final answer that names the gold one: its option letter or text (MCQ items),
    or the gold text (open questions), compared after normalisation."""

    name = "agent_answer"

    def check(self, item: Item, trace: Trace) -> Verdict:
        answer = (trace.answer or "").strip()
        if not answer:
            return self.verdict(False, [f"no final answer ({trace.meta.get('stop_reason', 'missing')})"])
        if item.answer is None:
            return self.verdict(True, ["answered (no gold answer to compare)"])
        if item.options:
            chosen = extract_choice(answer, item.options)
            ok = chosen == item.answer
        else:
            gold = normalise(item.gold_text or "")
            ok = bool(gold) and (normalise(answer) == gold or f" {gold} " in f" {normalise(answer)} ")
        return self.verdict(ok, [f"answer '{answer[:80]}' {'matches' if ok else 'does not match'} gold"])
