"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig, LLMSettings, RetrySettings
from medloom.testing.fake_openai import FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.vllm_fixtures import prepared_model_dir, vllm_server

# One real vLLM server per test session, shared by every integration test.
__all__ = ["fake_llm", "prepared_model_dir", "student_server", "vllm_server"]


@pytest.fixture
def student_server() -> Iterator[FakeOpenAIServer]:
    """A fake endpoint playing a deterministic MCQ student (generator, judge, refiner)."""
    with FakeOpenAIServer(McqStudent()) as srv:
        yield srv


FakeFactory = Callable[..., tuple[FakeOpenAIServer, LLMClient]]


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeFactory]:
    """``fake_llm(responder)`` → (server, client); both are closed after the test."""
    servers: list[FakeOpenAIServer] = []
    clients: list[LLMClient] = []

    def start(responder, **server_kwargs) -> tuple[FakeOpenAIServer, LLMClient]:  # type: ignore[no-untyped-def]
        server = FakeOpenAIServer(responder, **server_kwargs).start()
        servers.append(server)
        settings = LLMSettings(retry=RetrySettings(max_attempts=2, initial_backoff_s=0, max_backoff_s=0))
        client = LLMClient([EndpointConfig(name="fake", base_url=server.base_url)], settings)
        clients.append(client)
        return server, client

    yield start
    for client in clients:
        await client.aclose()
    for server in servers:
        server.stop()
