"""The fake endpoint in process: an ``LLMClient`` reaches it through a ``MockTransport``, with no
socket, no thread and the caller's agent and node names visible to the responder::

    fake = FakeLLM(ScriptedResponder(default="Answer: B").on("Correct", agent="judge"))
    client = fake.client()
    medloom.run(spec_with_endpoint(fake.base_url), transport=fake.transport)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig, LLMSettings
from medloom.llm.transport import MockTransport, TransportRequest, TransportResponse
from medloom.testing.fake.endpoint import FakeEndpoint
from medloom.testing.fake.responders import DownMode, Embedder, Responder


class FakeLLM(FakeEndpoint):
    """A fake OpenAI-compatible endpoint answering an in-process transport."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        models: Sequence[str] = ("fake-model",),
        strict_models: bool = False,
        record_requests: bool = True,
        embedder: Embedder | None = None,
        base_url: str = "http://fake-llm.invalid/v1",
    ) -> None:
        super().__init__(
            responder,
            models=models,
            strict_models=strict_models,
            record_requests=record_requests,
            embedder=embedder,
        )
        self.base_url = base_url
        """Nothing listens there: only this fake's transport reaches it."""
        self.transport = MockTransport(self._answer)

    def client(
        self, settings: LLMSettings | None = None, *, name: str = "fake", **endpoint: Any
    ) -> LLMClient:
        """An ``LLMClient`` whose one endpoint is this fake."""
        config = EndpointConfig(name=name, base_url=self.base_url, **endpoint)
        return LLMClient([config], settings, transport=self.transport)

    def set_down(self, down: bool = True, mode: DownMode = "drop") -> None:
        """Make the endpoint unavailable (``"drop"``: connection reset, ``"refuse"``: connection
        refused, ``"503"``: an error reply) or available again with ``down=False``."""
        if mode not in ("drop", "refuse", "503"):
            raise ValueError(f"unknown down mode {mode!r}")
        self._down = mode if down else None

    async def _answer(self, request: TransportRequest) -> TransportResponse:
        if self._down == "refuse":
            with self._lock:
                self._rejected += 1
            raise ConnectionRefusedError(f"nothing listens at {request.base_url} (fake is down)")
        outcome = await self.handle(request.method, request.path, request.body, request.headers, request.tags)
        if outcome.drop:
            raise ConnectionResetError("the fake endpoint closed the connection without a response")
        if outcome.truncate:
            return TransportResponse(
                status=outcome.status, content=outcome.body_bytes(), headers=outcome.headers
            )
        return TransportResponse.of_json(outcome.payload, outcome.status, outcome.headers)
