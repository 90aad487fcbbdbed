"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from medloom.llm.client import LLMClient
from medloom.llm.settings import LLMSettings, RetrySettings
from medloom.testing.fake import FakeLLM, FakeOpenAIServer
from medloom.testing.mcq_student import McqStudent
from tests.vllm_fixtures import prepared_model_dir, vllm_server

# One real vLLM server per test session, shared by every integration test.
__all__ = ["fake_llm", "prepared_model_dir", "student_server", "vllm_server"]


@pytest.fixture
def student_server() -> Iterator[FakeOpenAIServer]:
    """A fake endpoint playing a deterministic MCQ student (generator, judge, refiner)."""
    with FakeOpenAIServer(McqStudent()) as srv:
        yield srv


FakeFactory = Callable[..., tuple[FakeLLM, LLMClient]]


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeFactory]:
    """``fake_llm(responder)`` → (fake, client): an in-process fake endpoint (no socket; the
    responder sees ``req.agent`` / ``req.node``) and a client reaching it; closed after the test."""
    clients: list[LLMClient] = []

    def start(responder, **fake_kwargs) -> tuple[FakeLLM, LLMClient]:  # type: ignore[no-untyped-def]
        fake = FakeLLM(responder, **fake_kwargs)
        settings = LLMSettings(retry=RetrySettings(max_attempts=2, initial_backoff_s=0, max_backoff_s=0))
        client = fake.client(settings)
        clients.append(client)
        return fake, client

    yield start
    for client in clients:
        await client.aclose()
