"""The pool layer: each call takes a slot on an endpoint of the pool, goes through the transport,
and reports the endpoint's health back; errors come out classified and free of the API key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from asyncio_throttle import Throttler

from medloom.llm.pool import EndpointPool, EndpointState
from medloom.llm.redact import configured_secrets, redact_error
from medloom.llm.transport import Method, Transport, TransportRequest
from medloom.llm.wire import classify, decode, is_endpoint_fault

T = TypeVar("T")


class Lease:
    """A slot on one endpoint for the duration of a call: JSON requests to it."""

    __slots__ = ("_dispatcher", "endpoint")

    def __init__(self, endpoint: EndpointState, dispatcher: EndpointDispatcher):
        self.endpoint = endpoint
        self._dispatcher = dispatcher

    async def post(
        self, path: str, body: Mapping[str, Any], tags: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        return await self._dispatcher.request(self.endpoint, "POST", path, body, tags)

    def secrets(self) -> list[str]:
        return self._dispatcher.secrets()


class EndpointDispatcher:
    """Routes calls over the pool (sticky by item or least outstanding, health, per-endpoint
    concurrency) and an optional global rate limit, and sends them through one transport."""

    def __init__(self, pool: EndpointPool, transport: Transport, rate_limit_rps: float | None = None):
        self.pool = pool
        self.transport = transport
        self._headers: dict[str, dict[str, str]] = {}
        self._throttler: Throttler | None = None
        if rate_limit_rps:
            self._throttler = (
                Throttler(rate_limit=int(rate_limit_rps), period=1.0)
                if float(rate_limit_rps).is_integer()
                else Throttler(rate_limit=1, period=1.0 / rate_limit_rps)
            )

    def secrets(self) -> list[str]:
        """The configured API key values, read now (never recorded, cached or quoted)."""
        return configured_secrets(ep.config.api_key_env for ep in self.pool.endpoints)

    def headers(self, ep: EndpointState) -> dict[str, str]:
        """Request headers of ``ep``; reading its key raises ValueError when the variable is unset."""
        headers = self._headers.get(ep.name)
        if headers is None:
            headers = {
                "Authorization": f"Bearer {ep.config.api_key()}",
                "Content-Type": "application/json",
            }
            self._headers[ep.name] = headers
        return headers

    async def request(
        self,
        ep: EndpointState,
        method: Method,
        path: str,
        body: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One exchange with ``ep`` (no slot taken): the decoded JSON object or an LLMError."""
        request = TransportRequest(
            method=method,
            base_url=ep.config.base_url,
            path=path,
            endpoint=ep.name,
            body=body,
            headers=self.headers(ep),
            timeout_s=ep.config.timeout_s,
            tags=tags or {},
        )
        return decode(await self.transport.send(request), ep.name, request)

    async def call(
        self,
        model: str,
        only: list[str] | None,
        work: Callable[[Lease], Awaitable[T]],
        affinity: str | None = None,
    ) -> tuple[T, str]:
        """``work`` on a slot of the best endpoint serving ``model``; its result and the endpoint.
        ``affinity``: the key calls stick by under sticky routing (the item id).

        Failures are classified (retryable or fatal), counted against the endpoint's health when
        they are its fault, and never quote its API key."""
        ep = await self.pool.acquire(model, only, affinity)
        probe = ep.ejected  # only a probe may take a slot on an endpoint out of rotation
        try:
            self.headers(ep)  # a missing API key is a config error: raise it unretried
        except BaseException:
            await self.pool.release(ep, healthy=None, probe=probe)
            raise
        healthy: bool | None = None
        error: str | None = None
        try:
            if self._throttler is not None:
                async with self._throttler:
                    pass
            result = await work(Lease(ep, self))
            healthy = True
            return result, ep.name
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = classify(exc, ep.name)
            healthy = False if is_endpoint_fault(err) else None
            leaked = redact_error(err, self.secrets())  # servers may echo the key back
            error = str(err)
            if leaked or err is exc:
                raise err from None  # the original exception may quote the key
            raise err from exc
        finally:
            await self.pool.release(ep, healthy=healthy, probe=probe, error=error)
