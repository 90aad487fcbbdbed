"""Wire format: turn an LLMRequest into an OpenAI-compatible call and the reply back."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import openai

from medloom.core.calls import Choice, LLMRequest, TokenLogprob, Usage
from medloom.core.errors import FatalLLMError, LLMError, RetryableLLMError
from medloom.llm.settings import EndpointConfig


def request_kwargs(request: LLMRequest, n: int, endpoint: EndpointConfig) -> dict[str, Any]:
    """Keyword arguments for ``completions.create`` or ``chat.completions.create``."""
    kwargs: dict[str, Any] = {
        "model": request.model,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "n": n,
    }
    if request.top_p is not None:
        kwargs["top_p"] = request.top_p
    if request.stop:
        kwargs["stop"] = list(request.stop)
    if request.seed is not None:
        kwargs["seed"] = request.seed
    if request.mode == "chat":
        assert request.messages is not None
        kwargs["messages"] = [m.model_dump() for m in request.messages]
        if request.logprobs is not None:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.logprobs
    else:
        kwargs["prompt"] = request.prompt
        if request.logprobs is not None:
            kwargs["logprobs"] = request.logprobs
    if request.response_schema is not None:
        if endpoint.structured_output == "openai" and request.mode == "chat":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "result", "schema": request.response_schema},
            }
        elif endpoint.structured_output == "vllm":
            kwargs["extra_body"] = {"structured_outputs": {"json": request.response_schema}}
    return kwargs


def request_body(request: LLMRequest, n: int, endpoint: EndpointConfig) -> dict[str, Any]:
    """The JSON body of the call (``request_kwargs`` with ``extra_body`` merged in)."""
    body = request_kwargs(request, n, endpoint)
    extra = body.pop("extra_body", None)
    if extra:
        body.update(extra)
    return body


def parse_choices(raw: Any, mode: str) -> tuple[list[Choice], Usage]:
    """Choices and usage from an OpenAI SDK response object."""
    choices: list[Choice] = []
    for c in sorted(raw.choices, key=lambda c: c.index):
        logprobs: list[TokenLogprob] | None = None
        if mode == "chat":
            text = c.message.content or ""
            if c.logprobs is not None and c.logprobs.content:
                logprobs = [TokenLogprob(token=t.token, logprob=t.logprob) for t in c.logprobs.content]
        else:
            text = c.text or ""
            if c.logprobs is not None and c.logprobs.tokens:
                logprobs = [
                    TokenLogprob(token=t, logprob=lp if lp is not None else 0.0)
                    for t, lp in zip(c.logprobs.tokens, c.logprobs.token_logprobs or [], strict=False)
                ]
        choices.append(
            Choice(index=len(choices), text=text, finish_reason=c.finish_reason, logprobs=logprobs)
        )
    usage = Usage()
    if raw.usage is not None:
        usage = Usage(
            prompt_tokens=raw.usage.prompt_tokens or 0,
            completion_tokens=raw.usage.completion_tokens or 0,
        )
    return choices, usage


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def classify(exc: BaseException, endpoint: str) -> LLMError:
    """Map a transport/SDK exception to a retryable or fatal medloom error."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return RetryableLLMError(f"timeout from {endpoint}", endpoint=endpoint)
    if isinstance(exc, openai.APIConnectionError):
        return RetryableLLMError(f"connection error from {endpoint}: {exc}", endpoint=endpoint)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"HTTP {status} from {endpoint}: {short(exc.message)}"
        if status == 429 or status == 408 or status >= 500:
            return RetryableLLMError(
                message,
                endpoint=endpoint,
                status=status,
                retry_after=retry_after_from_headers(exc.response.headers),
            )
        return FatalLLMError(message, endpoint=endpoint, status=status)
    if isinstance(exc, openai.APIResponseValidationError | ValueError | KeyError | TypeError):
        return RetryableLLMError(
            f"malformed response from {endpoint}: {type(exc).__name__}: {short(str(exc))}",
            endpoint=endpoint,
        )
    return RetryableLLMError(f"{type(exc).__name__} from {endpoint}: {short(str(exc))}", endpoint=endpoint)


def is_endpoint_fault(err: LLMError) -> bool:
    """Whether the failure says something about the endpoint's health (not a 429 or a 4xx)."""
    return isinstance(err, RetryableLLMError) and err.status != 429


def short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
