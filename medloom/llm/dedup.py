"""De-duplication of identical calls in flight: the first caller (the leader) makes the call,
callers that arrive while it runs wait for its result instead of making their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class InflightDedup(Generic[T]):
    """``await dedup.run(key, call, share)``: ``call()`` once per key at a time; a waiter gets
    ``share(result)`` (e.g. the result marked as a cache hit). When the leader is cancelled, its
    waiters (not cancelled themselves) go again; when it fails, they get its error."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, call: Callable[[], Awaitable[T]], share: Callable[[T], T]) -> T:
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                first = await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled, not the one it waited for
                return await self.run(key, call, share)  # leader cancelled: go again
            return share(first)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await call()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()  # waiters were not cancelled themselves: they retry
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]
