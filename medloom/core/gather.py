"""``asyncio.gather`` for the lists an item's work fans out over, which are mostly one long."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """The results of ``awaitables`` in order, run concurrently as ``asyncio.gather`` runs them; a
    lone awaitable is awaited in place, without the task ``gather`` would make for it (one model,
    one temperature, one trace: the common case, once per call)."""
    pending = list(awaitables)
    if len(pending) == 1:
        return [await pending[0]]
    return list(await asyncio.gather(*pending))
