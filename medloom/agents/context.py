"""What an agent needs from the run it works in: where to report its calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from medloom.core.events import Event


@dataclass(frozen=True)
class AgentContext:
    """Identifies the item and node an agent works for; ``emit`` receives its events."""

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
