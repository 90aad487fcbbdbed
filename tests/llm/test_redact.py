"""Configured API key values are masked in responses (text and logprob tokens) and errors, before the
client caches or returns them."""

from __future__ import annotations

import pytest

from medloom.core.calls import Choice, TokenLogprob
from medloom.core.errors import FatalLLMError
from medloom.llm import LLMRequest, RequestCache
from medloom.llm.redact import configured_secrets, redact_choices, redact_error
from medloom.testing.fake import FakeRequest
from tests.llm._support import endpoint
from tests.llm.conftest import ClientFactory, ServerFactory

KEY = "sk-redact-TEST-0a1b2c3d4e5f"
KEY_ENV = "MEDLOOM_TEST_REDACT_KEY"


def test_configured_secrets_reads_set_variables_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv("MEDLOOM_TEST_SHORT", "abc")
    monkeypatch.delenv("MEDLOOM_TEST_UNSET", raising=False)
    assert configured_secrets([KEY_ENV, None, "MEDLOOM_TEST_SHORT", "MEDLOOM_TEST_UNSET"]) == [KEY]


def test_choice_text_and_a_key_split_across_tokens_are_masked() -> None:
    tokens = ["My", " key", " is", " sk-red", "act-TEST-0a1b", "2c3d4e5f", "!", " ok"]
    choice = Choice(
        index=0,
        text="".join(tokens),
        logprobs=[TokenLogprob(token=t, logprob=-0.1 * i) for i, t in enumerate(tokens)],
    )
    untouched = Choice(index=1, text="nothing secret")
    (clean, same) = redact_choices([choice, untouched], [KEY])
    assert clean.text == "My key is ***! ok"
    assert clean.logprobs is not None
    assert [t.token for t in clean.logprobs] == ["My", " key", " is", " ***", "", "", "!", " ok"]
    assert "".join(t.token for t in clean.logprobs) == clean.text
    assert [t.logprob for t in clean.logprobs] == [t.logprob for t in choice.logprobs or []]
    assert same is untouched


def test_error_messages_are_masked_in_place() -> None:
    err = FatalLLMError(f"HTTP 401: bad key {KEY}")
    assert redact_error(err, [KEY]) and str(err) == "HTTP 401: bad key ***"
    assert not redact_error(err, [KEY])


async def test_a_key_echoed_in_a_completion_never_reaches_the_response_or_the_cache(
    make_server: ServerFactory,
    make_client: ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
    cache: RequestCache,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)

    def echo_auth(req: FakeRequest) -> str:
        return f"The header was {req.headers.get('Authorization')} today"

    srv = make_server(echo_auth)
    client = make_client(endpoint(srv, api_key_env=KEY_ENV), cache=cache)
    request = LLMRequest(model="fake-model", prompt="Q?", n=2, logprobs=1)

    response = await client.generate(request)

    assert srv.request_count == 1, "the fake was not asked, so nothing was tested"
    assert [c.text for c in response.choices] == ["The header was Bearer *** today"] * 2
    assert all(KEY not in t.token for c in response.choices for t in c.logprobs or [])
    cached = await client.generate(request)
    assert cached.cache_hit and cached.text == "The header was Bearer *** today"
    cache.close()
    assert KEY.encode() not in b"".join(p.read_bytes() for p in cache.path.parent.glob("*"))
