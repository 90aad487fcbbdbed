"""The one node protocol: every node (generator, verifier, refiner, selector, a step's op) turns
the traces routed to it into the traces it passes on.

``run(item, traces, ctx)`` receives the item and its batch of traces and returns a
:class:`NodeOutput`: the traces to route on, the ones it drops (with a reason), optionally an
updated item (e.g. with knowledge-graph paths in ``item.data``) or an item-level rejection.
Entry nodes run once per item with no traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from medloom.agents.context import AgentContext
from medloom.core.events import NodeStats
from medloom.core.records import Item, Trace, Verdict


@dataclass
class Drop:
    trace: Trace
    reason: str
    code: str
    """A short category for reports ("contaminated", "not grounded")."""
    announce: bool = True
    """Write a ``dropped`` event (False when the node's own event already says so)."""


@dataclass
class NodeOutput:
    traces: list[Trace] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    item: Item | None = None
    """The item as later nodes and the output rows should see it (None: unchanged)."""
    reject: str | None = None
    """Reject the whole item with this reason (its traces stop here)."""
    reject_code: str | None = None


class Node(Protocol):
    async def run(self, item: Item, traces: list[Trace], ctx: NodeContext) -> NodeOutput:
        """Turn the traces routed to this node into what it passes on (ops may type ``ctx`` as
        the plain AgentContext they hand to agents)."""
        ...


@dataclass
class ItemMemory:
    """What the nodes of one item share while it runs."""

    failed_reasons: dict[str, list[str]] = field(default_factory=dict)
    """Trace id → the reasons its latest failing verdict gave."""
    lineage: dict[str, str] = field(default_factory=dict)
    """Revised trace id → the id of the first trace it descends from."""


@dataclass(frozen=True)
class NodeContext(AgentContext):
    """An agent context that also carries this node's counters and the item's shared memory."""

    stats: NodeStats = field(default_factory=NodeStats)
    memory: ItemMemory = field(default_factory=ItemMemory)

    def judged(self, trace: Trace, verdict: Verdict, meta: dict[str, Any] | None = None) -> Trace:
        """``trace`` with ``verdict`` (from this node) added: recorded, counted by round, and its
        reasons kept for a refiner when it failed; ``meta`` is merged into the trace's."""
        verdict = verdict.model_copy(update={"node": self.node})
        update: dict[str, Any] = {"verdicts": [*trace.verdicts, verdict]}
        if meta:
            update["meta"] = {**trace.meta, **meta}
        trace = trace.model_copy(update=update)
        self.verdict(trace.id, verdict)
        key = "passed" if verdict.passed else "failed"
        self.stats.rounds.setdefault(str(trace.round), {"passed": 0, "failed": 0})[key] += 1
        setattr(self.stats, key, getattr(self.stats, key) + 1)
        if not verdict.passed:
            self.memory.failed_reasons[trace.id] = verdict.reasons
        return trace
