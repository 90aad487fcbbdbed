"""Trajectory events: a versioned, typed record of everything that happens to an item (reading,
versions and migration: ``medloom.core.trajectory``)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from medloom.core.calls import EmbeddingResponse, LLMRequest, LLMResponse, ToolCall
from medloom.core.records import Revision, Trace, Verdict
from medloom.core.usage import UsageTally

SCHEMA_VERSION = 2
"""Version of the trajectory format written now. Every line carries it as ``v``, and each session
starts with a header line (``medloom.core.trajectory``); older lines are migrated when read.
v2: the header line; ``item_end`` node stats carry the whole usage tally (failed calls, samples, cost)."""

ItemStatus = Literal["kept", "rejected", "failed"]


class Outcomes(BaseModel):
    """How many items ended, and how: the counts of a report, or of a window of time."""

    items: int = 0
    kept: int = 0
    rejected: int = 0
    failed: int = 0

    def count(self, status: ItemStatus, sign: int = 1) -> None:
        """Count one item that ended with ``status`` (``sign=-1`` takes it back)."""
        self.items += sign
        setattr(self, status, getattr(self, status) + sign)


class _Event(BaseModel):
    v: int = SCHEMA_VERSION
    ts: float = Field(default_factory=time.time)
    item_id: str
    attempt: int = 0
    """Which session of the run produced the event (0 for the first, +1 per resume)."""
    node: str | None = None


class ItemStarted(_Event):
    type: Literal["item_started"] = "item_started"
    index: int
    input: dict[str, Any]


class LLMCall(_Event):
    type: Literal["llm_call"] = "llm_call"
    agent: str
    request: LLMRequest
    response: LLMResponse | None = None
    error: str | None = None


class EmbeddingCall(_Event):
    """One ``client.embed`` call: the texts and the usage, not the vectors (they can be rebuilt
    from the cache)."""

    type: Literal["embedding_call"] = "embedding_call"
    agent: str
    model: str
    texts: list[str]
    response: EmbeddingResponse | None = None
    error: str | None = None


class TraceCreated(_Event):
    type: Literal["trace"] = "trace"
    trace: Trace


class VerdictGiven(_Event):
    type: Literal["verdict"] = "verdict"
    trace_id: str
    verdict: Verdict


class TraceRevised(_Event):
    type: Literal["revision"] = "revision"
    trace_id: str
    new_trace_id: str
    revision: Revision


class TraceDropped(_Event):
    type: Literal["dropped"] = "dropped"
    trace_id: str
    reason: str


class Selection(_Event):
    type: Literal["selection"] = "selection"
    method: str
    selected: list[str]
    candidates: list[str]
    detail: dict[str, Any] = Field(default_factory=dict)


class Note(_Event):
    """What a step decided, for the trajectory: votes and revisions, removals, resampling tries."""

    type: Literal["note"] = "note"
    kind: str
    """What the note is about ("vote_round", "contaminated", "resample")."""
    trace_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class AgentTurn(_Event):
    """One turn of a tool-using agent: what it wrote (reasoning, text) and the tools it called."""

    type: Literal["agent_turn"] = "agent_turn"
    trace_id: str
    turn: int
    """1-based."""
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    answer: str | None = None
    """The final answer, on the turn that gave one."""


class ToolCalled(_Event):
    """A tool call an agent made, as the model wrote it (``arguments``: raw JSON text)."""

    type: Literal["tool_call"] = "tool_call"
    trace_id: str
    turn: int
    call: ToolCall


class ToolReturned(_Event):
    """What a tool call returned; ``error`` when the call was invalid or the tool failed."""

    type: Literal["tool_result"] = "tool_result"
    trace_id: str
    turn: int
    call_id: str
    name: str
    content: str
    error: bool = False
    latency_s: float = 0.0


PREFERENCE_PAIR = "preference_pair"
"""The note kind of a preference pair an op built itself (``data``: ``kind``, ``chosen``,
``rejected``, ``chosen_trace_id``, ``rejected_trace_id``, ``reason``); the ``dpo`` export uses them."""


class NodeStats(UsageTally):
    """What one node did for one item (summed over items in the report): traces and its LLM calls."""

    traces_in: int = 0
    """Traces the node received (a generator: the inputs it was started with)."""
    traces_out: int = 0
    """Traces it passed on along its edges."""
    passed: int = 0
    failed: int = 0
    """A verifier's verdicts."""
    dropped: int = 0
    """Traces it dropped (no edge's condition held, or an op dropped them)."""
    rounds: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Verifier pass/fail counts by refinement round ("0", "1", ...)."""

    def merge(self, other: UsageTally, sign: int = 1) -> None:
        super().merge(other, sign)  # every count this tally shares with ``other``
        if not isinstance(other, NodeStats):
            return
        for rnd, counts in other.rounds.items():
            mine = self.rounds.setdefault(rnd, {})
            for k, v in counts.items():
                mine[k] = mine.get(k, 0) + sign * v


class ItemFinished(_Event):
    type: Literal["item_end"] = "item_end"
    status: ItemStatus
    reason: str | None = None
    """Why it was rejected or failed (the node is in ``node``)."""
    reason_code: str | None = None
    """A short category of a rejection's reason, for reports ("failed mcq_answer")."""
    rows: list[dict[str, Any]] = Field(default_factory=list)
    item: dict[str, Any] | None = None
    """The item's question, options and gold answer as it ended (training exports read it for items
    without a kept row; absent in runs made before it was recorded)."""
    stats: dict[str, NodeStats] = Field(default_factory=dict)
    wall_s: float = 0.0


class RowSkipped(_Event):
    type: Literal["row_skipped"] = "row_skipped"
    index: int
    reason: str


Event = Annotated[
    ItemStarted
    | LLMCall
    | EmbeddingCall
    | TraceCreated
    | VerdictGiven
    | TraceRevised
    | TraceDropped
    | Selection
    | Note
    | AgentTurn
    | ToolCalled
    | ToolReturned
    | ItemFinished
    | RowSkipped,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
