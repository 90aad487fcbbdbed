"""Wire format: an LLMRequest as an OpenAI-compatible JSON body, and a response back into
choices, embeddings or a medloom error."""

from __future__ import annotations

import email.utils
import json
import re
import time
from typing import Any

from medloom.core.calls import Choice, LLMRequest, TokenLogprob, ToolCall, Usage
from medloom.core.errors import FatalLLMError, LLMError, RetryableLLMError
from medloom.llm.settings import EndpointConfig
from medloom.llm.transport import TransportRequest, TransportResponse

_RETRYABLE_STATUS = {408, 429}


def request_body(request: LLMRequest, n: int, endpoint: EndpointConfig) -> dict[str, Any]:
    """The JSON body of a ``/completions`` or ``/chat/completions`` call for ``n`` samples."""
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
        kwargs["messages"] = [m.wire() for m in request.messages]
        if request.tools:
            kwargs["tools"] = list(request.tools)
        if request.logprobs is not None:
            kwargs["logprobs"] = True
            kwargs["top_logprobs"] = request.logprobs
    else:
        kwargs["prompt"] = request.prompt
        if request.logprobs is not None:
            kwargs["logprobs"] = request.logprobs
        if request.echo:
            kwargs["echo"] = True
            kwargs.setdefault("logprobs", 0)
    if request.response_schema is not None:
        if endpoint.structured_output == "openai" and request.mode == "chat":
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "result", "schema": request.response_schema},
            }
        elif endpoint.structured_output == "vllm":
            kwargs["structured_outputs"] = {"json": request.response_schema}
    return kwargs


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    headers = {str(k).lower(): v for k, v in headers.items()}
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
    """A medloom error for any exception raised while calling ``endpoint`` (an unexpected one is
    retryable: it says nothing certain about the request)."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, ValueError | KeyError | TypeError):
        return malformed(endpoint, exc)
    return RetryableLLMError(f"{type(exc).__name__} from {endpoint}: {short(str(exc))}", endpoint=endpoint)


def malformed(endpoint: str, exc: BaseException | str) -> RetryableLLMError:
    detail = exc if isinstance(exc, str) else f"{type(exc).__name__}: {short(str(exc))}"
    return RetryableLLMError(f"malformed response from {endpoint}: {detail}", endpoint=endpoint)


def decode(
    response: TransportResponse, endpoint: str, request: TransportRequest | None = None
) -> dict[str, Any]:
    """The JSON object of a successful response; an error for any other (408, 429 and 5xx are
    retryable with their ``Retry-After``, other 4xx fatal, a body that is not a JSON object is a
    retryable malformed response). With ``request``, a 404 or an HTML page names the URL and the fix:
    those mean the base URL is wrong, and retrying cannot help."""
    html = _is_html(response)
    if response.status >= 400:
        detail = f"an HTML page ({_html_title(response)})" if html else _error_message(response)
        message = f"HTTP {response.status} from {endpoint}: {short(detail)}"
        if response.status == 404 and request is not None:
            message += f" at {request.url}; {base_url_hint(request.base_url)}"
        if response.status in _RETRYABLE_STATUS or response.status >= 500:
            retry_after = retry_after_from_headers(response.headers)
            raise RetryableLLMError(
                message, endpoint=endpoint, status=response.status, retry_after=retry_after
            )
        raise FatalLLMError(message, endpoint=endpoint, status=response.status)
    if html and request is not None:
        raise FatalLLMError(
            f"{request.url} answered with an HTML page ({_html_title(response)}), not the OpenAI API's "
            f"JSON; {base_url_hint(request.base_url)}",
            endpoint=endpoint,
            status=response.status,
        )
    try:
        payload = response.json()
    except ValueError as exc:
        raise malformed(endpoint, exc) from None
    if not isinstance(payload, dict):
        raise malformed(endpoint, "not a JSON object")
    return payload


def base_url_hint(base_url: str) -> str:
    """How to fix a base URL that does not reach an OpenAI-compatible API."""
    if not base_url.rstrip("/").endswith("/v1"):
        return f"the base URL {base_url} lacks /v1: try --endpoint {base_url.rstrip('/')}/v1"
    return (
        f"check that the base URL {base_url} is the root of an OpenAI-compatible API "
        "(e.g. http://HOST:8000/v1 for vLLM)"
    )


def _is_html(response: TransportResponse) -> bool:
    if response.data is not None:
        return False
    kind = str(response.headers.get("Content-Type") or response.headers.get("content-type") or "")
    start = response.content.lstrip()[:15].lower()
    return "html" in kind.lower() or start.startswith((b"<!doctype", b"<html"))


def _html_title(response: TransportResponse) -> str:
    match = re.search(r"<title[^>]*>(.*?)</title>", response.text(), re.I | re.S)
    return f"title '{short(' '.join(match.group(1).split()), 80)}'" if match else "no title"


def _error_message(response: TransportResponse) -> str:
    try:
        payload = response.json()
    except ValueError:
        return response.text()
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail"):  # OpenAI-like; FastAPI's (vLLM's) 404
            if isinstance(payload.get(key), str):
                return str(payload[key])
    return response.text()


def parse_choices(payload: dict[str, Any], mode: str, endpoint: str) -> tuple[list[Choice], Usage]:
    """Choices and usage from a completion / chat completion JSON body."""
    try:
        choices: list[Choice] = []
        for c in sorted(payload["choices"], key=lambda c: c.get("index", 0)):
            logprobs: list[TokenLogprob] | None = None
            lp = c.get("logprobs")
            tool_calls: list[ToolCall] | None = None
            if mode == "chat":
                message = c.get("message") or {}
                text = message.get("content") or ""
                tool_calls = _tool_calls(message.get("tool_calls"))
                if lp and lp.get("content"):
                    logprobs = [TokenLogprob(token=t["token"], logprob=t["logprob"]) for t in lp["content"]]
            else:
                text = c.get("text") or ""
                if lp and lp.get("tokens"):
                    offsets = lp.get("text_offset") or [None] * len(lp["tokens"])
                    logprobs = [
                        TokenLogprob(token=t, logprob=v if v is not None else 0.0, offset=o)
                        for t, v, o in zip(
                            lp["tokens"], lp.get("token_logprobs") or [], offsets, strict=False
                        )
                    ]
            choices.append(
                Choice(
                    index=len(choices),
                    text=text,
                    finish_reason=c.get("finish_reason"),
                    logprobs=logprobs,
                    tool_calls=tool_calls,
                )
            )
        usage = _usage(payload)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise malformed(endpoint, exc) from None
    return choices, usage


def _tool_calls(raw: Any) -> list[ToolCall] | None:
    """A chat message's ``tool_calls`` (arguments kept as the raw text, an object re-encoded)."""
    if not raw:
        return None
    calls: list[ToolCall] = []
    for i, entry in enumerate(raw):
        function = entry.get("function") or {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        calls.append(
            ToolCall(id=entry.get("id") or f"call_{i}", name=function.get("name") or "", arguments=arguments)
        )
    return calls


def parse_embeddings(payload: dict[str, Any], count: int, endpoint: str) -> tuple[list[list[float]], Usage]:
    """``count`` vectors in input order, and the usage, from an ``/embeddings`` JSON body."""
    try:
        rows = sorted(payload["data"], key=lambda d: d.get("index", 0))
        vectors = [[float(v) for v in row["embedding"]] for row in rows]
        usage = _usage(payload)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise malformed(endpoint, exc) from None
    if len(vectors) != count:
        raise malformed(endpoint, f"{len(vectors)} embeddings for {count} inputs")
    return vectors, usage


def _usage(payload: dict[str, Any]) -> Usage:
    raw = payload.get("usage")
    if not raw:
        return Usage()
    return Usage(
        prompt_tokens=raw.get("prompt_tokens") or 0,
        completion_tokens=raw.get("completion_tokens") or 0,
    )


def is_endpoint_fault(err: LLMError) -> bool:
    """Whether the failure says something about the endpoint's health (not a 429 or a 4xx)."""
    return isinstance(err, RetryableLLMError) and err.status != 429


def short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
