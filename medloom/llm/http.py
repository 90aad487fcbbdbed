"""The default transport: aiohttp, one session per event loop, JSON bodies.

The ``openai`` SDK spends most of a call's CPU in its httpx stack and response models
(bench/overhead.py profiles it); this transport posts the same JSON bodies with far less work.
Timeouts and connection errors are retryable; statuses are decoded above it (``wire.decode``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import aiohttp

from medloom.core.errors import RetryableLLMError
from medloom.llm.transport import TransportRequest, TransportResponse
from medloom.llm.wire import short


class AiohttpTransport:
    """Talks to every endpoint over HTTP: one session per set of request headers (i.e. per
    endpoint key), made lazily inside the running event loop, so headers are set once."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[tuple[str, str], ...], aiohttp.ClientSession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _open(self, headers: Mapping[str, str]) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._sessions = {}  # made on another (finished) event loop: start afresh here
            self._loop = loop
        key = tuple(headers.items())
        session = self._sessions.get(key)
        if session is None or session.closed:
            # The endpoint pool bounds calls in flight; the connector need not.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            session = self._sessions[key] = aiohttp.ClientSession(connector=connector, headers=headers)
        return session

    async def send(self, request: TransportRequest) -> TransportResponse:
        ep = request.endpoint
        data = None
        if request.body is not None:
            data = json.dumps(request.body, separators=(",", ":")).encode()
        timeout = self._timeouts.get(request.timeout_s)
        if timeout is None:
            timeout = self._timeouts[request.timeout_s] = aiohttp.ClientTimeout(total=request.timeout_s)
        try:
            async with self._open(request.headers).request(
                request.method, request.url, data=data, timeout=timeout
            ) as resp:
                return TransportResponse(status=resp.status, content=await resp.read(), headers=resp.headers)
        except TimeoutError:
            raise RetryableLLMError(f"timeout from {ep}", endpoint=ep) from None
        except aiohttp.ClientError as exc:
            raise RetryableLLMError(
                f"connection error from {ep}: {type(exc).__name__}: {short(str(exc))}", endpoint=ep
            ) from None

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        if self._loop is asyncio.get_running_loop():
            await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
