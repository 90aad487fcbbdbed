"""``client.embed`` through the layers, in process: batches, distinct texts once, retries, the
cache and the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from medloom.core.errors import FatalLLMError
from medloom.llm.cache import RequestCache
from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig
from medloom.llm.transport import MockTransport, TransportRequest, TransportResponse
from medloom.testing.fake import FakeLLM, hashed_bag_of_words
from tests.llm._support import fast_settings


async def test_embed_sends_each_distinct_text_once_in_batches_and_accounts_them() -> None:
    fake = FakeLLM()
    client = fake.client(fast_settings())
    texts = ["kidney stones", "heart failure", "kidney stones", "asthma", "gout"]
    response = await client.embed(texts, "emb", batch_size=2, tags={"node": "fewshot"})
    assert response.vectors == [hashed_bag_of_words(t) for t in texts]
    assert fake.embedding_inputs == ["kidney stones", "heart failure", "asthma", "gout"]
    assert fake.embedding_tags == [{"node": "fewshot"}, {"node": "fewshot"}]  # 2 batches of 2
    assert (response.inputs, response.cached, response.usage.prompt_tokens) == (5, 0, 6)
    tally = client.ledger.by_model["emb"]
    assert (tally.calls, tally.samples, tally.prompt_tokens) == (1, 5, 6)


async def test_embeddings_come_from_the_cache_the_second_time(tmp_path: Path) -> None:
    fake = FakeLLM()
    client = fake.client(fast_settings())
    client.cache = RequestCache(tmp_path / "llm.sqlite")
    try:
        first = await client.embed(["a b", "c d"], "emb")
        again = await client.embed(["c d", "a b", "e"], "emb")
    finally:
        client.cache.close()
    assert fake.embedding_inputs == ["a b", "c d", "e"]
    assert again.vectors == [first.vectors[1], first.vectors[0], hashed_bag_of_words("e")]
    assert (again.cached, again.cache_hit, again.usage.prompt_tokens) == (2, False, 1)
    assert client.ledger.by_model["emb"].cached_samples == 2


async def test_embed_retries_a_503_and_raises_a_fatal_error_once() -> None:
    calls: list[str] = []

    def handler(request: TransportRequest) -> TransportResponse:
        calls.append(request.path)
        if len(calls) == 1:
            return TransportResponse.of_json({"error": {"message": "busy"}}, status=503)
        if request.body and request.body["model"] == "missing":
            return TransportResponse.of_json({"error": {"message": "no such model"}}, status=404)
        return TransportResponse.of_json({"data": [{"index": 0, "embedding": [1.0, 0.0]}]})

    endpoint = EndpointConfig(base_url="http://mock/v1")
    client = LLMClient([endpoint], fast_settings(), transport=MockTransport(handler))
    response = await client.embed(["x"], "emb")
    assert response.vectors == [[1.0, 0.0]] and response.attempts == 2
    assert "HTTP 503" in response.errors[0]
    with pytest.raises(FatalLLMError, match="no such model"):
        await client.embed(["y"], "missing")
    assert calls == ["/embeddings"] * 3
    assert client.ledger.by_model["missing"].failed_calls == 1
