"""What an agent needs from the run it works in: where to report its calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from medloom.core.calls import LLMRequest, LLMResponse
from medloom.core.events import Event, LLMCall, Note, TraceCreated, VerdictGiven
from medloom.core.records import Trace, Verdict


@dataclass(frozen=True)
class AgentContext:
    """Identifies the item and node an agent works for; ``emit`` receives its events.

    The helpers below stamp item, attempt and node on the events nodes and agents record.
    """

    item_id: str = ""
    attempt: int = 0
    node: str | None = None
    emit: Callable[[Event], None] | None = None

    def at(self, node: str) -> AgentContext:
        return replace(self, node=node)

    def tags(self, agent: str) -> dict[str, str]:
        """The tags of ``agent``'s calls (``agent``, ``node``, ``item``): in-process transports
        (fakes) route on them and sticky routing keeps an item's calls on one endpoint by ``item``;
        never sent to a server."""
        tags = {"agent": agent}
        if self.node:
            tags["node"] = self.node
        if self.item_id:
            tags["item"] = self.item_id
        return tags

    def send(self, event: Event) -> None:
        if self.emit is not None:
            self.emit(event)

    def call(
        self, agent: str, request: LLMRequest, response: LLMResponse | None = None, error: str | None = None
    ) -> LLMCall:
        """Record one LLM call (its response, or the error it ended with)."""
        event = LLMCall(
            item_id=self.item_id,
            attempt=self.attempt,
            node=self.node,
            agent=agent,
            request=request,
            response=response,
            error=error or None,
        )
        self.send(event)
        return event

    def trace_created(self, trace: Trace) -> None:
        self.send(TraceCreated(item_id=self.item_id, attempt=self.attempt, node=self.node, trace=trace))

    def verdict(self, trace_id: str, verdict: Verdict) -> None:
        self.send(
            VerdictGiven(
                item_id=self.item_id, attempt=self.attempt, node=self.node, trace_id=trace_id, verdict=verdict
            )
        )

    def note(self, kind: str, data: dict[str, Any], trace_id: str | None = None) -> None:
        self.send(
            Note(
                item_id=self.item_id,
                attempt=self.attempt,
                node=self.node,
                kind=kind,
                trace_id=trace_id,
                data=data,
            )
        )
