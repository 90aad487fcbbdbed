"""A cluster-wide cap on the calls in flight per endpoint, for shards that share endpoints.

Each shard's pool only sees its own outstanding requests: N shards routing over the same endpoint list
would each allow ``max_concurrency`` calls, N times what the server was sized for. With shared
endpoints every shard's transport takes a slot from one :class:`EndpointSlots` actor before a call
and gives it back after, so the cap holds across the cluster.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from medloom.llm.transport import Transport, TransportRequest, TransportResponse


class EndpointSlots:
    """The slots of each capped endpoint (a Ray async actor: ``ray.remote(EndpointSlots)``).

    Slots are held per holder (a shard), so a shard that died can have its slots given back
    (:meth:`release_holder`) before it is relaunched."""

    def __init__(self, caps: dict[str, int]):
        self.caps = dict(caps)
        self.held: dict[str, Counter[str]] = {key: Counter() for key in caps}
        self.peak: dict[str, int] = dict.fromkeys(caps, 0)
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:  # made in the actor's event loop
            self._changed = asyncio.Condition()
        return self._changed

    def in_use(self, key: str) -> int:
        return sum(self.held[key].values())

    async def acquire(self, key: str, holder: str) -> None:
        """Wait for a free slot of ``key`` (endpoints without a cap pass at once)."""
        if key not in self.caps:
            return
        changed = self._condition()
        async with changed:
            await changed.wait_for(lambda: self.in_use(key) < self.caps[key])
            self.held[key][holder] += 1
            self.peak[key] = max(self.peak[key], self.in_use(key))

    async def release(self, key: str, holder: str) -> None:
        if key not in self.caps or self.held[key][holder] <= 0:
            return
        changed = self._condition()
        async with changed:
            self.held[key][holder] -= 1
            changed.notify_all()

    async def release_holder(self, holder: str) -> int:
        """Give back every slot ``holder`` still holds (it died mid-call); returns how many."""
        changed = self._condition()
        async with changed:
            freed = 0
            for counts in self.held.values():
                freed += counts.pop(holder, 0)
            changed.notify_all()
        return freed

    def peaks(self) -> dict[str, int]:
        """The most calls each endpoint had in flight at once, cluster-wide."""
        return dict(self.peak)


class CappedTransport:
    """A transport that holds a cluster-wide slot of the endpoint for each request it sends."""

    def __init__(self, inner: Transport, slots: Any, holder: str):
        self.inner = inner
        self.slots = slots
        """A Ray actor handle of :class:`EndpointSlots`."""
        self.holder = holder

    async def send(self, request: TransportRequest) -> TransportResponse:
        key = request.base_url
        await self.slots.acquire.remote(key, self.holder)
        try:
            return await self.inner.send(request)
        finally:
            self.slots.release.remote(key, self.holder)  # no need to wait for it

    async def aclose(self) -> None:
        await self.inner.aclose()
