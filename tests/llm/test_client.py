"""LLMClient against the real-socket fake OpenAI server: requests, retries, errors, accounting."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from medloom.core.calls import Usage
from medloom.core.errors import ConfigError, FatalLLMError, NoEndpointAvailable, RetryableLLMError
from medloom.core.usage import cost_of
from medloom.llm import ChatMessage, LLMClient, LLMRequest, Price, RequestCache, RetrySettings
from medloom.llm.http import AiohttpTransport
from medloom.testing.fake import FakeRequest, Reply
from tests.llm._support import FAST_RETRY, endpoint, fast_settings
from tests.llm.conftest import ClientFactory, ServerFactory

MODEL = "fake-model"


def completion(prompt: str = "one two three", **kwargs: object) -> LLMRequest:
    return LLMRequest(model=MODEL, prompt=prompt, **kwargs)  # type: ignore[arg-type]


def chat(text: str = "what is up", **kwargs: object) -> LLMRequest:
    messages = (ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content=text))
    return LLMRequest(model=MODEL, messages=messages, **kwargs)  # type: ignore[arg-type]


def retry(max_attempts: int) -> RetrySettings:
    return FAST_RETRY.model_copy(update={"max_attempts": max_attempts})


# -- plain requests ----------------------------------------------------------------------------


async def test_completion_returns_parsed_choice_usage_endpoint_and_latency(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: Reply.slow(0.05, "alpha beta gamma"))
    client = make_client(endpoint(srv, name="fake-a"))

    response = await client.generate(completion("one two"))

    assert [c.text for c in response.choices] == ["alpha beta gamma"]
    assert response.text == "alpha beta gamma"
    assert response.choices[0].index == 0
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].logprobs is None
    assert response.choices[0].cache_hit is False
    assert response.usage == Usage(prompt_tokens=2, completion_tokens=3)
    assert response.model == MODEL
    assert response.endpoint == "fake-a"
    assert response.latency_s >= 0.05
    assert response.attempts == 1
    assert response.errors == []
    assert srv.request_count == 1
    req = srv.requests[0]
    assert req.kind == "completion"
    assert req.body["prompt"] == "one two"
    assert req.body["model"] == MODEL
    assert req.n == 1


async def test_chat_returns_parsed_choice_and_sends_messages(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: "the answer is B")
    client = make_client(srv)

    response = await client.generate(chat("pick one"))

    assert response.text == "the answer is B"
    assert response.choices[0].finish_reason == "stop"
    # Prompt tokens are counted over both messages ("be brief" + "pick one").
    assert response.usage == Usage(prompt_tokens=4, completion_tokens=4)
    assert response.endpoint == "endpoint0"  # unnamed endpoints get a positional name
    assert response.latency_s > 0
    req = srv.requests[0]
    assert req.kind == "chat"
    assert req.messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "pick one"},
    ]
    assert "prompt" not in req.body


async def test_n_samples_come_from_one_http_request_when_endpoint_supports_n(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: ["first", "second sample", "third one here"])
    client = make_client(srv)

    response = await client.generate(chat(n=3, temperature=0.8))

    assert srv.request_count == 1
    assert srv.requests[0].n == 3
    assert srv.requests[0].body["n"] == 3
    assert [c.text for c in response.choices] == ["first", "second sample", "third one here"]
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert response.usage.completion_tokens == 1 + 2 + 3
    assert response.usage.prompt_tokens == 5  # prompt counted once


async def test_n_samples_come_from_n_http_requests_without_supports_n(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: f"sample {req.index_in_run}")
    client = make_client(endpoint(srv, supports_n=False))

    response = await client.generate(completion("a b", n=3, temperature=0.8))

    assert srv.request_count == 3
    assert all(r.n == 1 and r.body["n"] == 1 for r in srv.requests)
    assert sorted(c.text for c in response.choices) == ["sample 0", "sample 1", "sample 2"]
    assert [c.index for c in response.choices] == [0, 1, 2]
    # Usage is summed over the three calls: each pays for the 2-token prompt and 2 tokens out.
    assert response.usage == Usage(prompt_tokens=6, completion_tokens=6)
    assert response.attempts == 1


async def test_single_sample_without_supports_n_is_one_request(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: "x")
    client = make_client(endpoint(srv, supports_n=False))

    await client.generate(completion())

    assert srv.request_count == 1


# -- logprobs, stop, max_tokens ---------------------------------------------------------------------


async def test_completion_logprobs_are_requested_and_parsed(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: Reply(texts="alpha beta", token_logprob=-0.25))
    client = make_client(srv)

    response = await client.generate(completion(logprobs=2))

    assert srv.requests[0].body["logprobs"] == 2
    assert "top_logprobs" not in srv.requests[0].body
    lps = response.choices[0].logprobs
    assert lps is not None
    assert [t.token for t in lps] == ["alpha", " beta"]
    assert [t.logprob for t in lps] == [-0.25, -0.25]


async def test_chat_logprobs_are_requested_and_parsed(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: Reply(texts=["yes indeed", "no"], token_logprob=-1.5))
    client = make_client(srv)

    response = await client.generate(chat(logprobs=3, n=2))

    body = srv.requests[0].body
    assert body["logprobs"] is True
    assert body["top_logprobs"] == 3
    first, second = response.choices
    assert first.logprobs is not None and second.logprobs is not None
    assert [(t.token, t.logprob) for t in first.logprobs] == [("yes", -1.5), (" indeed", -1.5)]
    assert [t.token for t in second.logprobs] == ["no"]


async def test_logprobs_absent_when_not_requested(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: "alpha beta")
    client = make_client(srv)

    chat_response = await client.generate(chat())
    completion_response = await client.generate(completion())

    assert chat_response.choices[0].logprobs is None
    assert completion_response.choices[0].logprobs is None
    assert all("logprobs" not in r.body for r in srv.requests)


@pytest.mark.parametrize("mode", ["chat", "completion"])
async def test_stop_and_max_tokens_pass_through(
    make_server: ServerFactory, make_client: ClientFactory, mode: str
) -> None:
    srv = make_server(lambda req: "w1 w2 w3 END w4 w5")
    client = make_client(srv)
    make = chat if mode == "chat" else completion

    stopped = await client.generate(make(stop=("END", "###"), max_tokens=50))
    truncated = await client.generate(make(max_tokens=2, temperature=0.3, top_p=0.9, seed=7))

    first, second = (r.body for r in srv.requests)
    assert first["stop"] == ["END", "###"]
    assert first["max_tokens"] == 50
    assert "seed" not in first and "top_p" not in first
    assert "stop" not in second
    assert second["max_tokens"] == 2
    assert second["temperature"] == 0.3
    assert second["top_p"] == 0.9
    assert second["seed"] == 7
    # The fake honours them, and the client reports what came back.
    assert stopped.text == "w1 w2 w3 "
    assert stopped.choices[0].finish_reason == "stop"
    assert truncated.text == "w1 w2"
    assert truncated.choices[0].finish_reason == "length"
    assert truncated.usage.completion_tokens == 2


# -- retries ------------------------------------------------------------------------------------------


async def test_server_error_then_success_is_retried_and_recorded(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    def responder(req: FakeRequest) -> Reply | str:
        if req.attempt == 0:
            return Reply.error(500, message="kaboom in the kitchen")
        return "recovered"

    srv = make_server(responder)
    client = make_client(endpoint(srv, name="flaky"))

    response = await client.generate(completion())

    assert response.text == "recovered"
    assert response.attempts == 2
    assert len(response.errors) == 1
    assert "500" in response.errors[0]
    assert "kaboom in the kitchen" in response.errors[0]
    assert "flaky" in response.errors[0]
    assert srv.request_count == 2
    assert client.ledger.by_model[MODEL].failed_calls == 0


async def test_429_retry_after_is_honoured(make_server: ServerFactory, make_client: ClientFactory) -> None:
    def responder(req: FakeRequest) -> Reply | str:
        return Reply.error(429, retry_after=1) if req.attempt == 0 else "finally"

    srv = make_server(responder)
    client = make_client(srv)

    started = time.monotonic()
    response = await client.generate(completion())
    elapsed = time.monotonic() - started

    assert response.text == "finally"
    assert response.attempts == 2
    assert "429" in response.errors[0]
    assert elapsed >= 0.9  # waited for Retry-After, not the 10-50 ms backoff
    assert elapsed < 3.0
    # A rate limit says nothing about the endpoint's health.
    (snap,) = client.pool.snapshot()
    assert snap["failures"] == 0
    assert snap["in_rotation"] is True


async def test_retry_after_is_capped_by_max_retry_after(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    def responder(req: FakeRequest) -> Reply | str:
        return Reply.error(503, retry_after=30) if req.attempt == 0 else "ok"

    srv = make_server(responder)
    retry_settings = FAST_RETRY.model_copy(update={"max_retry_after_s": 0.1})
    client = make_client(srv, settings=fast_settings(retry=retry_settings))

    started = time.monotonic()
    response = await client.generate(completion())

    assert response.text == "ok"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_fatal_client_errors_are_not_retried(
    make_server: ServerFactory, make_client: ClientFactory, status: int
) -> None:
    srv = make_server(lambda req: Reply.error(status, message="you did it wrong"))
    client = make_client(srv)

    with pytest.raises(FatalLLMError) as info:
        await client.generate(completion())

    assert srv.request_count == 1
    assert info.value.status == status
    assert "you did it wrong" in str(info.value)
    assert client.ledger.by_model[MODEL].failed_calls == 1
    assert client.ledger.calls == 0
    # A bad request is not the endpoint's fault: it stays in rotation with no failure counted.
    (snap,) = client.pool.snapshot()
    assert snap["failures"] == 0
    assert snap["in_rotation"] is True
    assert snap["outstanding"] == 0


async def test_exhausting_max_attempts_raises_retryable(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: Reply.error(503))
    client = make_client(srv, settings=fast_settings(retry=retry(3)))

    with pytest.raises(RetryableLLMError) as info:
        await client.generate(completion())

    assert srv.request_count == 3
    assert info.value.status == 503
    assert client.ledger.by_model[MODEL].failed_calls == 1
    assert client.pool.snapshot()[0]["outstanding"] == 0


async def test_slow_reply_times_out_then_succeeds(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    def responder(req: FakeRequest) -> Reply:
        return Reply.slow(2.0, "too late") if req.attempt == 0 else Reply.slow(0.01, "in time")

    srv = make_server(responder)
    client = make_client(endpoint(srv, timeout_s=0.2))

    started = time.monotonic()
    response = await client.generate(completion())

    assert response.text == "in time"
    assert response.attempts == 2
    assert "timeout" in response.errors[0]
    assert srv.request_count == 2
    assert time.monotonic() - started < 1.5  # did not wait for the slow reply


async def test_slow_replies_time_out_until_attempts_run_out(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: Reply.slow(2.0, "never seen"))
    client = make_client(endpoint(srv, timeout_s=0.2), settings=fast_settings(retry=retry(2)))

    started = time.monotonic()
    with pytest.raises(RetryableLLMError, match="timeout"):
        await client.generate(completion())

    assert srv.request_count == 2
    assert time.monotonic() - started < 1.5


async def test_malformed_body_is_retried(make_server: ServerFactory, make_client: ClientFactory) -> None:
    srv = make_server(lambda req: Reply.garbage() if req.attempt == 0 else "clean reply")
    client = make_client(srv)

    response = await client.generate(chat())

    assert response.text == "clean reply"
    assert response.attempts == 2
    assert "malformed" in response.errors[0]
    assert srv.request_count == 2


async def test_dropped_connection_is_retried(make_server: ServerFactory, make_client: ClientFactory) -> None:
    srv = make_server(lambda req: Reply.disconnect() if req.attempt == 0 else "second try")
    client = make_client(srv)

    response = await client.generate(completion())

    assert response.text == "second try"
    assert response.attempts == 2
    assert "connection error" in response.errors[0]


# -- routing errors, discovery, keys ---------------------------------------------------------------------


async def test_no_endpoint_serves_the_model(make_server: ServerFactory, make_client: ClientFactory) -> None:
    srv = make_server()
    client = make_client(endpoint(srv, name="only-a", models=["model-a"]))

    with pytest.raises(NoEndpointAvailable) as info:
        await client.generate(LLMRequest(model="model-b", prompt="hi"))

    assert "model-b" in str(info.value)
    assert "only-a" in str(info.value)
    assert srv.request_count == 0
    ok = await client.generate(LLMRequest(model="model-a", prompt="hi"))
    assert ok.endpoint == "only-a"


async def test_no_endpoint_among_the_named_ones(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server()
    client = make_client(endpoint(srv, name="a"))

    with pytest.raises(NoEndpointAvailable):
        await client.generate(completion(), endpoints=["b"])
    response = await client.generate(completion(), endpoints=["a"])

    assert response.endpoint == "a"
    assert srv.request_count == 1


async def test_model_discovery_via_v1_models(make_server: ServerFactory, make_client: ClientFactory) -> None:
    discovered = make_server(models=("llama-x", "qwen-y"))
    configured = make_server(models=("something-else",))
    client = make_client([endpoint(discovered, name="disc"), endpoint(configured, name="conf", models=["z"])])

    found = await client.discover_models()

    assert found == {"disc": ["llama-x", "qwen-y"], "conf": ["z"]}
    # Routing now follows what was discovered.
    response = await client.generate(LLMRequest(model="qwen-y", prompt="hi"))
    assert response.endpoint == "disc"
    assert discovered.request_count == 1
    z = await client.generate(LLMRequest(model="z", prompt="hi"))
    assert z.endpoint == "conf"
    with pytest.raises(NoEndpointAvailable):
        await client.generate(LLMRequest(model="not-served", prompt="hi"))


async def test_api_key_from_env_is_sent_as_bearer_token(
    make_server: ServerFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLOOM_TEST_LLM_KEY", "sk-test-123")
    srv = make_server()
    client = make_client(endpoint(srv, api_key_env="MEDLOOM_TEST_LLM_KEY"))

    await client.generate(completion())

    headers = {k.lower(): v for k, v in srv.requests[0].headers.items()}
    assert headers["authorization"] == "Bearer sk-test-123"


async def test_missing_api_key_env_raises_a_config_error_naming_variable_and_endpoint(
    make_server: ServerFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDLOOM_TEST_LLM_KEY_MISSING", raising=False)
    srv = make_server()
    client = make_client(endpoint(srv, name="keyed", api_key_env="MEDLOOM_TEST_LLM_KEY_MISSING"))

    with pytest.raises(ConfigError, match="MEDLOOM_TEST_LLM_KEY_MISSING") as info:
        await client.generate(completion())

    assert "keyed" in str(info.value)
    assert srv.request_count == 0
    # A configuration mistake is not an endpoint fault and does not leak a pool slot.
    (snap,) = client.pool.snapshot()
    assert snap["outstanding"] == 0
    assert snap["failures"] == 0
    assert snap["in_rotation"] is True
    with pytest.raises(ConfigError, match="MEDLOOM_TEST_LLM_KEY_MISSING"):
        await client.discover_models()


# -- accounting -----------------------------------------------------------------------------------------


async def test_ledger_totals_match_usage_of_fresh_responses(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: "two words")
    price = Price(prompt=2.0, completion=10.0)
    client = make_client(srv, settings=fast_settings(prices={MODEL: price}), cache=cache)

    requests = [completion("a b c"), chat("x y", n=2), completion("a b c"), completion("d", n=3)]
    responses = [await client.generate(r) for r in requests]

    fresh = [r for r in responses if not r.cache_hit]
    assert len(fresh) == 3 and responses[2].cache_hit
    paid = sum((r.usage for r in fresh), Usage())
    assert paid.completion_tokens == 2 + 4 + 6
    assert client.ledger.prompt_tokens == paid.prompt_tokens
    assert client.ledger.completion_tokens == paid.completion_tokens
    tally = client.ledger.by_model[MODEL]
    assert tally.calls == 4
    assert tally.samples == 1 + 2 + 1 + 3
    assert tally.cached_samples == 1
    assert tally.failed_calls == 0
    expected_cost = (paid.prompt_tokens * 2.0 + paid.completion_tokens * 10.0) / 1e6
    assert tally.cost == pytest.approx(expected_cost)
    assert tally.cost > 0


def test_cost_of_uses_price_per_million_tokens() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000)
    assert cost_of(usage, Price(prompt=0.5, completion=4.0)) == pytest.approx(0.5 + 2.0)
    assert cost_of(usage, None) == 0.0


async def test_ledger_without_price_has_zero_cost_and_counts_failures(
    make_server: ServerFactory, make_client: ClientFactory
) -> None:
    srv = make_server(lambda req: Reply.error(400) if "bad" in req.prompt_text else "fine")
    client = make_client(srv, settings=fast_settings(prices={"other-model": Price(prompt=1.0)}))

    await client.generate(completion("good"))
    with pytest.raises(FatalLLMError):
        await client.generate(completion("bad"))

    tally = client.ledger.by_model[MODEL]
    assert tally.calls == 1
    assert tally.failed_calls == 1
    assert tally.prompt_tokens == 1
    assert tally.completion_tokens == 1
    assert tally.cost == 0.0


async def test_client_as_async_context_manager_closes_sessions_and_its_cache(
    make_server: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDLOOM_TEST_CM_KEY", "sk-cm-1234")
    srv = make_server()
    path = tmp_path / "llm.sqlite"
    async with LLMClient.from_urls(
        [srv.base_url], cache_path=path, api_key_env="MEDLOOM_TEST_CM_KEY"
    ) as client:
        await client.generate(completion())
        assert isinstance(client.transport, AiohttpTransport)
        assert client.transport._sessions  # a session was opened
    assert not client.transport._sessions  # closed with the client
    assert srv.requests[0].headers["Authorization"] == "Bearer sk-cm-1234"
    assert client.cache is not None
    with pytest.raises(sqlite3.ProgrammingError):
        len(client.cache)  # closed with the client
