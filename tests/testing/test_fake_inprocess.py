"""The in-process fake (``FakeLLM``): the same scripting and shaping as the socket server, failure
modes that surface as the same client errors, and the caller's tags."""

from __future__ import annotations

import pytest

from medloom.core.calls import LLMRequest
from medloom.core.errors import FatalLLMError, RetryableLLMError
from medloom.llm.settings import LLMSettings, RetrySettings
from medloom.testing.fake import FakeLLM, Reply, ScriptedResponder

ONCE = LLMSettings(retry=RetrySettings(max_attempts=1))


def _request(prompt: str = "Q: which?\nA:", **kw: object) -> LLMRequest:
    return LLMRequest(model="fake-model", prompt=prompt, **kw)  # type: ignore[arg-type]


async def test_scripted_by_caller_with_shaping_applied() -> None:
    script = ScriptedResponder(default="one two three four").on("judged ###cut", agent="judge")
    fake = FakeLLM(script)
    client = fake.client(ONCE)
    judged = await client.generate(_request(stop=("###",)), tags={"agent": "judge", "node": "verify"})
    plain = await client.generate(_request(max_tokens=2, n=2))
    assert judged.text == "judged " and judged.choices[0].finish_reason == "stop"
    assert [c.text for c in plain.choices] == ["one two", "one two"]
    assert plain.choices[0].finish_reason == "length" and plain.usage.completion_tokens == 4
    assert [(r.agent, r.node) for r in fake.requests] == [("judge", "verify"), (None, None)]
    assert fake.request_count == 2 and fake.completion_tokens_served == 5


@pytest.mark.parametrize(
    ("mode", "message"),
    [("drop", "ConnectionResetError"), ("refuse", "ConnectionRefusedError"), ("503", "HTTP 503")],
)
async def test_down_modes_are_retryable_errors(mode: str, message: str) -> None:
    fake = FakeLLM()
    client = fake.client(ONCE)
    fake.set_down(mode=mode)  # type: ignore[arg-type]
    with pytest.raises(RetryableLLMError, match=message):
        await client.generate(_request())
    assert fake.rejected_count == 1 and fake.request_count == 0
    fake.set_down(False)
    assert (await client.generate(_request("back"))).text == "back"


async def test_garbage_slow_and_error_replies() -> None:
    replies = iter([Reply.garbage(), Reply.slow(1.0, "late"), Reply.error(400, message="bad prompt")])
    fake = FakeLLM(lambda req: next(replies))
    client = fake.client(ONCE, timeout_s=0.05)
    with pytest.raises(RetryableLLMError, match="malformed response from fake"):
        await client.generate(_request())
    with pytest.raises(RetryableLLMError, match="timeout from fake"):
        await client.generate(_request())
    with pytest.raises(FatalLLMError, match="HTTP 400 from fake: bad prompt"):
        await client.generate(_request())


async def test_retries_see_the_attempt_number() -> None:
    fake = FakeLLM(lambda req: Reply.error(503) if req.attempt == 0 else "ok")
    client = fake.client(LLMSettings(retry=RetrySettings(initial_backoff_s=0, max_backoff_s=0)))
    response = await client.generate(_request())
    assert response.text == "ok" and response.attempts == 2
    assert [r.attempt for r in fake.requests] == [0, 1]
