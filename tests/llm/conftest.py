"""Fixtures for the LLM layer: fake OpenAI endpoints and fast-retrying clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from medloom.llm import EndpointConfig, LLMClient, LLMSettings, RequestCache
from medloom.testing.fake import FakeOpenAIServer
from tests.llm._support import endpoint, fast_settings

ServerFactory = Callable[..., FakeOpenAIServer]
ClientFactory = Callable[..., LLMClient]


@pytest.fixture
def make_server() -> Iterator[ServerFactory]:
    """Start fake servers on demand; all are stopped at teardown."""
    started: list[FakeOpenAIServer] = []

    def factory(*args: Any, **kwargs: Any) -> FakeOpenAIServer:
        srv = FakeOpenAIServer(*args, **kwargs).start()
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """Build ``LLMClient``s with fast retry/health settings; all are closed at teardown.

    ``make_client(endpoints, settings=None, cache=None)``; ``endpoints`` may mix
    ``EndpointConfig``s and ``FakeOpenAIServer``s.
    """
    clients: list[LLMClient] = []

    def factory(
        endpoints: list[EndpointConfig | FakeOpenAIServer] | EndpointConfig | FakeOpenAIServer,
        settings: LLMSettings | None = None,
        cache: RequestCache | None = None,
    ) -> LLMClient:
        if not isinstance(endpoints, list):
            endpoints = [endpoints]
        configs = [e if isinstance(e, EndpointConfig) else endpoint(e) for e in endpoints]
        client = LLMClient(configs, settings or fast_settings(), cache=cache)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()


@pytest.fixture
def cache(tmp_path: Any) -> Iterator[RequestCache]:
    c = RequestCache(tmp_path / "cache" / "llm.sqlite")
    yield c
    c.close()
