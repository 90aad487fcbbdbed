"""The one node protocol: every node (generator, verifier, refiner, selector, a step's op) turns
the traces routed to it into the traces it passes on.

``run(item, traces, ctx)`` receives the item and its batch of traces and returns a
:class:`NodeOutput`: the traces to route on, the ones it drops (with a reason), optionally an
updated item (e.g. with knowledge-graph paths in ``item.data``) or an item-level rejection.
Entry nodes run once per item with no traces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from medloom.agents.context import AgentContext
from medloom.core.records import Item, Trace


@dataclass
class Drop:
    trace: Trace
    reason: str
    code: str
    """A short category for reports ("contaminated", "not grounded")."""


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
    async def run(self, item: Item, traces: list[Trace], ctx: AgentContext) -> NodeOutput:
        """Turn the traces routed to this node into what it passes on."""
        ...
