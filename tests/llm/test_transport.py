"""Transports: the aiohttp one over a real socket, the in-process mock, and the shared decoding
of statuses and bodies into results or retryable/fatal errors."""

from __future__ import annotations

import asyncio

import pytest

from medloom.core.calls import LLMRequest
from medloom.core.errors import FatalLLMError, RetryableLLMError
from medloom.llm.client import LLMClient
from medloom.llm.http import AiohttpTransport
from medloom.llm.settings import EndpointConfig, LLMSettings, RetrySettings
from medloom.llm.transport import MockTransport, TransportRequest, TransportResponse
from medloom.llm.wire import decode
from medloom.testing import FakeOpenAIServer, Reply


def _post(base_url: str, timeout_s: float = 5) -> TransportRequest:
    return TransportRequest(
        method="POST",
        base_url=base_url,
        path="/completions",
        endpoint="ep",
        body={"model": "m", "prompt": "x"},
        headers={"Authorization": "Bearer k"},
        timeout_s=timeout_s,
        tags={"agent": "gen"},
    )


def test_errors_are_classified_with_the_server_message_and_retry_after() -> None:
    replies = iter([Reply.error(429, retry_after=3, message="slow down"), Reply.error(400, message="bad")])
    with FakeOpenAIServer(lambda req: next(replies)) as srv:
        transport = AiohttpTransport()

        async def go() -> None:
            with pytest.raises(RetryableLLMError) as retry:
                decode(await transport.send(_post(srv.base_url)), "ep")
            assert str(retry.value) == "HTTP 429 from ep: slow down" and retry.value.retry_after == 3
            with pytest.raises(FatalLLMError, match="HTTP 400 from ep: bad"):
                decode(await transport.send(_post(srv.base_url)), "ep")
            await transport.aclose()

        asyncio.run(go())
        # tags are for in-process handlers only: nothing of them reaches the server
        sent = srv.requests[0]
        assert "gen" not in str(sent.body) and "gen" not in str(dict(sent.headers).values())
        assert sent.agent is None


def test_truncated_body_is_a_retryable_malformed_response() -> None:
    with FakeOpenAIServer(lambda req: Reply.garbage()) as srv:
        transport = AiohttpTransport()

        async def go() -> None:
            with pytest.raises(RetryableLLMError, match="malformed response from ep"):
                decode(await transport.send(_post(srv.base_url)), "ep")
            await transport.aclose()

        asyncio.run(go())


def test_a_closed_port_is_a_retryable_connection_error() -> None:
    with FakeOpenAIServer() as srv:
        url = srv.base_url
    transport = AiohttpTransport()

    async def go() -> None:
        with pytest.raises(RetryableLLMError, match="connection error from ep"):
            await transport.send(_post(url))
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


async def test_mock_transport_sees_tags_and_maps_failures_like_tcp() -> None:
    seen: list[TransportRequest] = []

    async def handler(request: TransportRequest) -> TransportResponse:
        seen.append(request)
        if request.tags.get("agent") == "slow":
            await asyncio.sleep(1)
        if request.tags.get("agent") == "down":
            raise ConnectionRefusedError("refused")
        return TransportResponse.of_json({"choices": [{"index": 0, "text": "hi"}]})

    transport = MockTransport(handler)
    ok = await transport.send(_post("http://x/v1"))
    assert decode(ok, "ep")["choices"][0]["text"] == "hi"
    assert seen[0].tags == {"agent": "gen"} and seen[0].url == "http://x/v1/completions"
    slow = TransportRequest(
        "POST", "http://x/v1", "/completions", "ep", {}, timeout_s=0.05, tags={"agent": "slow"}
    )
    with pytest.raises(RetryableLLMError, match="timeout from ep"):
        await transport.send(slow)
    down = TransportRequest("POST", "http://x/v1", "/completions", "ep", {}, tags={"agent": "down"})
    with pytest.raises(RetryableLLMError, match="connection error from ep: ConnectionRefusedError"):
        await transport.send(down)


def test_decode_reads_retry_after_from_plain_and_http_headers() -> None:
    with pytest.raises(RetryableLLMError) as err:
        decode(TransportResponse(status=503, content=b"busy", headers={"Retry-After": "2"}), "ep")
    assert err.value.retry_after == 2 and str(err.value) == "HTTP 503 from ep: busy"
    with pytest.raises(RetryableLLMError, match="not a JSON object"):
        decode(TransportResponse.of_json([1, 2]), "ep")


async def test_client_over_a_mock_transport_passes_the_callers_tags() -> None:
    tags_seen: list[dict[str, str]] = []

    def handler(request: TransportRequest) -> TransportResponse:
        tags_seen.append(dict(request.tags))
        assert request.headers["Authorization"] == "Bearer EMPTY"
        return TransportResponse.of_json(
            {"choices": [{"index": 0, "text": "ok"}], "usage": {"prompt_tokens": 2, "completion_tokens": 1}}
        )

    client = LLMClient([EndpointConfig(base_url="http://mock/v1")], transport=MockTransport(handler))
    response = await client.generate(
        LLMRequest(model="m", prompt="p"), tags={"agent": "judge", "node": "verify"}
    )
    assert response.text == "ok" and response.usage.completion_tokens == 1
    assert tags_seen == [{"agent": "judge", "node": "verify"}]
    assert client.ledger.by_model["m"].calls == 1
