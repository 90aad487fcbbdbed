"""The request cache, on its own and behind LLMClient against the fake endpoint."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from medloom.core.calls import Choice, TokenLogprob, Usage
from medloom.core.errors import FatalLLMError
from medloom.llm import ChatMessage, LLMRequest, RequestCache
from medloom.testing.fake import FakeRequest, Reply
from tests.llm._support import endpoint
from tests.llm.conftest import ClientFactory, ServerFactory

MODEL = "fake-model"


def counting_responder(req: FakeRequest) -> list[str]:
    """Distinct texts per HTTP request and per choice, so a re-fetch is visible."""
    return [f"req{req.index_in_run} choice{i}" for i in range(req.n)]


def completion(prompt: str = "what is two plus two", **kwargs: object) -> LLMRequest:
    return LLMRequest(model=MODEL, prompt=prompt, **kwargs)  # type: ignore[arg-type]


# -- through the client ---------------------------------------------------------------------------------


async def test_same_request_twice_is_served_from_cache(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(counting_responder)
    client = make_client(srv, cache=cache)

    first = await client.generate(completion())
    second = await client.generate(completion())

    assert srv.request_count == 1
    assert first.cache_hit is False
    assert first.usage.total_tokens > 0
    assert second.cache_hit is True
    assert all(c.cache_hit for c in second.choices)
    assert second.usage == Usage()
    assert second.usage.total_tokens == 0
    assert second.endpoint is None
    assert [c.text for c in second.choices] == [c.text for c in first.choices] == ["req0 choice0"]
    assert cache.hits == 1
    assert cache.misses == 1


async def test_chat_request_is_cached_with_logprobs(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: Reply(texts="yes sir", token_logprob=-0.75))
    client = make_client(srv, cache=cache)
    request = LLMRequest(model=MODEL, messages=(ChatMessage(role="user", content="ok?"),), logprobs=1)

    first = await client.generate(request)
    second = await client.generate(request)

    assert srv.request_count == 1
    assert second.cache_hit
    assert second.choices[0].logprobs == first.choices[0].logprobs
    assert second.choices[0].logprobs == [
        TokenLogprob(token="yes", logprob=-0.75),
        TokenLogprob(token=" sir", logprob=-0.75),
    ]
    assert second.choices[0].finish_reason == "stop"


async def test_more_samples_fetch_only_the_missing_ones(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(counting_responder)
    client = make_client(srv, cache=cache)

    two = await client.generate(completion(n=2, temperature=0.9))
    three = await client.generate(completion(n=3, temperature=0.9))

    assert srv.request_count == 2
    assert srv.requests[0].n == 2
    assert srv.requests[1].n == 1
    assert srv.requests[1].body["n"] == 1
    assert [c.text for c in two.choices] == ["req0 choice0", "req0 choice1"]
    assert [c.text for c in three.choices] == ["req0 choice0", "req0 choice1", "req1 choice0"]
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert [c.cache_hit for c in three.choices] == [True, True, False]
    assert three.cache_hit is False  # not every sample came from the cache
    # Only the one fresh sample was paid for.
    assert three.usage.completion_tokens == 2
    assert three.endpoint == "endpoint0"
    assert len(cache) == 3

    fewer = await client.generate(completion(n=1, temperature=0.9))
    assert srv.request_count == 2
    assert fewer.cache_hit and fewer.text == "req0 choice0"


async def test_missing_samples_without_supports_n(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: f"sample {req.index_in_run}")
    client = make_client(endpoint(srv, supports_n=False), cache=cache)

    await client.generate(completion(n=2, temperature=1.0))
    four = await client.generate(completion(n=4, temperature=1.0))

    assert srv.request_count == 4  # 2 for the first call, only 2 more for the second
    assert [c.cache_hit for c in four.choices] == [True, True, False, False]
    assert len({c.text for c in four.choices}) == 4


async def test_cache_persists_across_reopen(
    make_server: ServerFactory, make_client: ClientFactory, tmp_path: Path
) -> None:
    path = tmp_path / "nested" / "dir" / "llm.sqlite"
    srv = make_server(counting_responder)

    first_cache = RequestCache(path)
    first = await make_client(srv, cache=first_cache).generate(completion(n=2, temperature=0.5))
    first_cache.close()
    assert path.exists()

    reopened = RequestCache(path)
    try:
        assert len(reopened) == 2
        again = await make_client(srv, cache=reopened).generate(completion(n=2, temperature=0.5))
    finally:
        reopened.close()

    assert srv.request_count == 1
    assert again.cache_hit
    assert [c.text for c in again.choices] == [c.text for c in first.choices]


async def test_different_parameters_are_different_cache_entries(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(counting_responder)
    client = make_client(srv, cache=cache)

    cold = await client.generate(completion(temperature=0.0))
    warm = await client.generate(completion(temperature=0.7))
    other_prompt = await client.generate(completion("a different prompt", temperature=0.7))
    other_model = await client.generate(LLMRequest(model="other-model", prompt="what is two plus two"))
    repeat = await client.generate(completion(temperature=0.7))

    assert srv.request_count == 4
    assert not any(r.cache_hit for r in (cold, warm, other_prompt, other_model))
    assert warm.text != cold.text
    assert repeat.cache_hit and repeat.text == warm.text


async def test_failed_requests_are_not_cached(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: Reply.error(400) if req.attempt == 0 else "second time lucky")
    client = make_client(srv, cache=cache)

    with pytest.raises(FatalLLMError):
        await client.generate(completion())
    assert len(cache) == 0
    response = await client.generate(completion())

    assert response.text == "second time lucky"
    assert response.cache_hit is False
    assert srv.request_count == 2


async def test_identical_concurrent_requests_share_one_call(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: Reply.slow(0.1, "shared answer"))
    client = make_client(srv, cache=cache)

    responses = await asyncio.gather(*(client.generate(completion(n=2)) for _ in range(5)))

    assert srv.request_count == 1
    assert all([c.text for c in r.choices] == ["shared answer"] * 2 for r in responses)
    assert sum(not r.cache_hit for r in responses) == 1
    paid = [r.usage.total_tokens for r in responses]
    assert sorted(paid)[:4] == [0, 0, 0, 0] and max(paid) > 0
    assert client.ledger.completion_tokens == 4  # 2 samples x 2 words, paid once
    assert client.ledger.by_model[MODEL].cached_samples == 8


async def test_cancelling_the_first_of_shared_requests_does_not_cancel_the_others(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: Reply.slow(0.2, "still wanted"))
    client = make_client(srv, cache=cache)

    leader = asyncio.create_task(client.generate(completion()))
    await asyncio.sleep(0.05)
    follower = asyncio.create_task(client.generate(completion()))
    await asyncio.sleep(0.05)
    leader.cancel()
    results = await asyncio.gather(leader, follower, return_exceptions=True)

    assert isinstance(results[0], asyncio.CancelledError)
    assert not follower.cancelled()
    response = follower.result()
    assert response.text == "still wanted"
    assert response.cache_hit is False  # it had to make the call itself
    assert srv.request_count == 2


async def test_cancelling_a_follower_leaves_the_shared_call_running(
    make_server: ServerFactory, make_client: ClientFactory, cache: RequestCache
) -> None:
    srv = make_server(lambda req: Reply.slow(0.2, "for the leader"))
    client = make_client(srv, cache=cache)

    leader = asyncio.create_task(client.generate(completion()))
    await asyncio.sleep(0.05)
    follower = asyncio.create_task(client.generate(completion()))
    await asyncio.sleep(0.05)
    follower.cancel()
    results = await asyncio.gather(leader, follower, return_exceptions=True)

    assert isinstance(results[1], asyncio.CancelledError)
    assert results[0].text == "for the leader"  # type: ignore[union-attr]
    assert srv.request_count == 1


# -- the cache on its own -----------------------------------------------------------------------------------


def test_cache_key_ignores_n_but_not_other_fields() -> None:
    base = completion(temperature=0.2)
    assert base.cache_key(0) == completion(temperature=0.2, n=5).cache_key(0)
    assert base.cache_key(0) != base.cache_key(1)
    assert base.cache_key(0).endswith(":0")
    variants = [
        completion(temperature=0.3),
        completion(temperature=0.2, max_tokens=10),
        completion(temperature=0.2, seed=1),
        completion(temperature=0.2, stop=("x",)),
        completion(temperature=0.2, logprobs=1),
        completion("other", temperature=0.2),
        LLMRequest(model="other", prompt="what is two plus two", temperature=0.2),
        LLMRequest(model=MODEL, messages=(ChatMessage(role="user", content="what is two plus two"),)),
    ]
    keys = {v.cache_key(0) for v in variants}
    assert base.cache_key(0) not in keys
    assert len(keys) == len(variants)


def test_put_and_get_many_by_sample_index(tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "c.sqlite")
    request = completion()
    try:
        cache.put(request, 0, Choice(index=7, text="zero", finish_reason="stop"))
        cache.put(request, 2, Choice(index=0, text="two", cache_hit=True))

        found = cache.get_many(request, 4)

        assert set(found) == {0, 2}
        assert found[0] == Choice(index=0, text="zero", finish_reason="stop", cache_hit=True)
        assert found[2].text == "two" and found[2].index == 2 and found[2].cache_hit
        assert cache.hits == 2 and cache.misses == 2
        assert cache.get_many(completion(temperature=1.0), 4) == {}
        # Overwriting a sample replaces it.
        cache.put(request, 0, Choice(index=0, text="zero again"))
        assert cache.get_many(request, 1)[0].text == "zero again"
        assert len(cache) == 2
    finally:
        cache.close()


def test_cache_file_is_wal_sqlite_with_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    RequestCache(path).close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"samples", "embeddings"} <= tables
    finally:
        db.close()


def test_a_version_1_cache_gains_the_embeddings_table_and_keeps_its_samples(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE samples (key TEXT PRIMARY KEY, model TEXT NOT NULL, choice TEXT NOT NULL, "
        "created REAL NOT NULL)"
    )
    db.execute("INSERT INTO samples VALUES ('k:0', 'm', '{}', 0)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    cache = RequestCache(path)
    try:
        assert len(cache) == 1
        cache.put_embeddings("emb", {"a text": [0.5, 0.25]})
        assert cache.get_embeddings("emb", ["a text", "other"]) == {"a text": [0.5, 0.25]}
        assert cache.get_embeddings("other-model", ["a text"]) == {}
    finally:
        cache.close()
