"""The aiohttp transport: error classes, Retry-After, malformed bodies, and reuse across loops."""

from __future__ import annotations

import asyncio

import pytest

from medloom.core.calls import LLMRequest
from medloom.core.errors import FatalLLMError, RetryableLLMError
from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig, LLMSettings, RetrySettings
from medloom.llm.transport import HttpTransport
from medloom.testing.fake_openai import FakeOpenAIServer, Reply


def test_errors_are_classified_with_the_server_message_and_retry_after() -> None:
    replies = iter([Reply.error(429, retry_after=3, message="slow down"), Reply.error(400, message="bad")])
    with FakeOpenAIServer(lambda req: next(replies)) as srv:
        transport = HttpTransport("ep", srv.base_url, "k", timeout_s=5)

        async def go() -> None:
            with pytest.raises(RetryableLLMError) as retry:
                await transport.post("/completions", {"model": "m", "prompt": "x"})
            assert str(retry.value) == "HTTP 429 from ep: slow down" and retry.value.retry_after == 3
            with pytest.raises(FatalLLMError, match="HTTP 400 from ep: bad"):
                await transport.post("/completions", {"model": "m", "prompt": "x"})
            await transport.aclose()

        asyncio.run(go())


def test_truncated_body_is_a_retryable_malformed_response() -> None:
    with FakeOpenAIServer(lambda req: Reply.garbage()) as srv:
        transport = HttpTransport("ep", srv.base_url, "k", timeout_s=5)

        async def go() -> None:
            with pytest.raises(RetryableLLMError, match="malformed response from ep"):
                await transport.post("/completions", {"model": "m", "prompt": "x"})
            await transport.aclose()

        asyncio.run(go())


def test_one_client_serves_successive_event_loops() -> None:
    with FakeOpenAIServer(lambda req: "fine") as srv:
        settings = LLMSettings(retry=RetrySettings(max_attempts=1))
        client = LLMClient([EndpointConfig(name="ep", base_url=srv.base_url)], settings)
        request = LLMRequest(model="fake-model", prompt="hello")
        first = asyncio.run(client.generate(request))
        second = asyncio.run(client.generate(request))  # a new loop: the old session is not reused
        assert first.choices[0].text == second.choices[0].text == "fine"
        asyncio.run(client.aclose())
