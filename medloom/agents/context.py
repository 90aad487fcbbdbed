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

    def send(self, event: Event) -> None:
        if self.emit is not None:
            self.emit(event)
