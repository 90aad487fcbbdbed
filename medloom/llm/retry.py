"""Retries with backoff for retryable failures only (tenacity); ``Retry-After`` is honoured."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from medloom.core.errors import LLMError, RetryableLLMError
from medloom.llm.settings import RetrySettings

T = TypeVar("T")


class RetryPolicy:
    """Calls a coroutine function until it succeeds, fails fatally or runs out of attempts."""

    def __init__(self, settings: RetrySettings):
        self.settings = settings
        self._backoff = wait_exponential_jitter(
            initial=settings.initial_backoff_s, max=settings.max_backoff_s
        )

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableLLMError) and exc.retry_after is not None:
            return min(exc.retry_after, self.settings.max_retry_after_s)
        return float(self._backoff(state))

    async def call(self, attempt: Callable[[], Awaitable[T]]) -> tuple[T, int, list[str]]:
        """``attempt()``'s result, the number of attempts made and the errors retried on the
        way; the last error is raised when every attempt failed.

        The first attempt runs bare (most calls succeed at once, and a tenacity loop costs more
        than the call's own bookkeeping); a retryable failure replays into the retry loop as its
        first attempt, so waits and counts are those of a loop started from the beginning."""
        try:
            return await attempt(), 1, []
        except RetryableLLMError as err:
            replay: list[RetryableLLMError] = [err]
        errors: list[str] = []
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableLLMError),
            reraise=True,
        )
        async for state in retrying:
            with state:
                attempts += 1
                try:
                    if replay:
                        raise replay.pop()
                    return await attempt(), attempts, errors
                except LLMError as err:
                    errors.append(str(err))
                    raise
        raise AssertionError("unreachable")  # pragma: no cover
