"""The transport protocol: how one HTTP exchange with an endpoint is made, and an in-process mock.

Everything above the transport (pool, retries, de-duplication, cache, accounting) is the same
whether requests go over TCP (:class:`medloom.llm.http.AiohttpTransport`, the default) or to a
function in the same process (:class:`MockTransport`, the httpx ``MockTransport`` pattern)::

    def handler(request: TransportRequest) -> TransportResponse:
        return TransportResponse.of_json({"choices": [{"index": 0, "text": "hi"}]})

    client = LLMClient(endpoints, transport=MockTransport(handler))

A transport raises :class:`~medloom.core.errors.RetryableLLMError` when no response arrived (timeout,
connection error); turning a response's status and body into a result or an error is the
caller's job (:func:`medloom.llm.wire.decode`), so both transports share it.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

from medloom.core.errors import LLMError, RetryableLLMError

Method: TypeAlias = Literal["GET", "POST"]


@dataclass(slots=True)
class TransportRequest:
    """One HTTP exchange as the client means it (not frozen: made once per call, kept cheap)."""

    method: Method
    base_url: str
    path: str
    """Relative to ``base_url``, e.g. ``/completions``."""
    endpoint: str
    """The endpoint's name, for error messages."""
    body: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    timeout_s: float = 120.0
    tags: Mapping[str, str] = field(default_factory=dict)
    """Who asks (``agent``, ``node``): seen by in-process handlers, never sent over the wire."""

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.path}"


@dataclass(slots=True)
class TransportResponse:
    """What came back: a status, headers and a body (raw bytes or already-decoded JSON)."""

    status: int = 200
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    data: Any = None
    """The decoded JSON body, when the transport has it without bytes (in-process)."""

    @classmethod
    def of_json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> TransportResponse:
        return cls(status=status, headers=headers or {}, data=data)

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not."""
        return self.data if self.data is not None else json.loads(self.content)

    def text(self) -> str:
        if self.data is not None:
            return json.dumps(self.data)
        return self.content.decode("utf-8", "replace")


class Transport(Protocol):
    """Sends one request and returns the response (any status); raises RetryableLLMError when
    nothing came back."""

    async def send(self, request: TransportRequest) -> TransportResponse: ...

    async def aclose(self) -> None: ...


Handler: TypeAlias = Callable[[TransportRequest], TransportResponse | Awaitable[TransportResponse]]


class MockTransport:
    """An in-process transport: ``handler(request)`` answers every request (sync or async).

    The handler may raise ``TimeoutError`` or ``ConnectionError`` to simulate those failures (they
    become the same retryable errors the aiohttp transport raises) or an ``LLMError`` directly.
    The request's ``timeout_s`` is enforced as over TCP.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def send(self, request: TransportRequest) -> TransportResponse:
        ep = request.endpoint
        try:
            async with asyncio.timeout(request.timeout_s):
                out = self.handler(request)
                if inspect.isawaitable(out):
                    out = await out
        except TimeoutError:
            raise RetryableLLMError(f"timeout from {ep}", endpoint=ep) from None
        except LLMError:
            raise
        except (ConnectionError, OSError) as exc:
            raise RetryableLLMError(
                f"connection error from {ep}: {type(exc).__name__}: {exc}", endpoint=ep
            ) from None
        return out

    async def aclose(self) -> None:
        return None
