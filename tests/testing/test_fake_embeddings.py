"""The fake server's /v1/embeddings route, through the real openai client."""

from __future__ import annotations

import openai
import pytest

from medloom.testing.fake import FakeOpenAIServer, hashed_bag_of_words


async def test_embeddings_are_deterministic_and_recorded() -> None:
    with FakeOpenAIServer() as server:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
            out = await client.embeddings.create(model="fake-model", input=["kidney stones", "heart failure"])
            again = await client.embeddings.create(model="fake-model", input="kidney stones")
            with pytest.raises(openai.BadRequestError):
                await client.embeddings.create(model="fake-model", input=[[1, 2, 3]])
    assert [d.index for d in out.data] == [0, 1]
    assert out.data[0].embedding == again.data[0].embedding == hashed_bag_of_words("kidney stones")
    assert out.data[0].embedding != out.data[1].embedding
    assert out.usage.prompt_tokens == 4
    assert server.embedding_inputs == ["kidney stones", "heart failure", "kidney stones"]
    assert server.request_count == 0  # completions counters are untouched
