"""A lean HTTP transport for the request path: one aiohttp session per endpoint, JSON in and out.

The ``openai`` SDK spends most of a call's CPU in its httpx stack and response models
(bench/overhead.py profiles it); this transport posts the same JSON bodies and raises medloom's
own errors directly: timeouts, connection errors, 408/429/5xx and malformed bodies are
retryable (with ``Retry-After``), other HTTP errors are fatal.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from medloom.core.calls import Choice, TokenLogprob, Usage
from medloom.core.errors import FatalLLMError, LLMError, RetryableLLMError
from medloom.llm.wire import retry_after_from_headers, short

_RETRYABLE_STATUS = {408, 429}


class HttpTransport:
    """POST/GET JSON to one endpoint; created lazily inside the running event loop."""

    def __init__(self, endpoint: str, base_url: str, api_key: str, timeout_s: float):
        self.endpoint = endpoint
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is not None and self._loop is not loop:
            self._session = None  # made on another (finished) event loop: start afresh here
        if self._session is None or self._session.closed:
            self._loop = loop
            # The endpoint pool bounds calls in flight; the connector need not.
            connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, timeout=self._timeout
            )
        return self._session

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", path, json.dumps(body, separators=(",", ":")).encode())

    async def get(self, path: str) -> dict[str, Any]:
        return await self._request("GET", path, None)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(self, method: str, path: str, data: bytes | None) -> dict[str, Any]:
        ep = self.endpoint
        try:
            async with self._open().request(method, f"{self.base_url}{path}", data=data) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except TimeoutError:
            raise RetryableLLMError(f"timeout from {ep}", endpoint=ep) from None
        except aiohttp.ClientError as exc:
            raise RetryableLLMError(
                f"connection error from {ep}: {type(exc).__name__}: {short(str(exc))}", endpoint=ep
            ) from None
        if status >= 400:
            message = f"HTTP {status} from {ep}: {short(_error_message(raw))}"
            if status in _RETRYABLE_STATUS or status >= 500:
                retry_after = retry_after_from_headers(headers)
                raise RetryableLLMError(message, endpoint=ep, status=status, retry_after=retry_after)
            raise FatalLLMError(message, endpoint=ep, status=status)
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise RetryableLLMError(
                f"malformed response from {ep}: {type(exc).__name__}: {short(str(exc))}", endpoint=ep
            ) from None
        if not isinstance(payload, dict):
            raise RetryableLLMError(f"malformed response from {ep}: not a JSON object", endpoint=ep)
        return payload


def _error_message(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(payload.get("message"), str):
            return str(payload["message"])
    return text


def parse_json_choices(payload: dict[str, Any], mode: str, endpoint: str) -> tuple[list[Choice], Usage]:
    """Choices and usage from a completion / chat completion JSON body."""
    try:
        choices: list[Choice] = []
        for c in sorted(payload["choices"], key=lambda c: c.get("index", 0)):
            logprobs: list[TokenLogprob] | None = None
            lp = c.get("logprobs")
            if mode == "chat":
                text = (c.get("message") or {}).get("content") or ""
                if lp and lp.get("content"):
                    logprobs = [TokenLogprob(token=t["token"], logprob=t["logprob"]) for t in lp["content"]]
            else:
                text = c.get("text") or ""
                if lp and lp.get("tokens"):
                    logprobs = [
                        TokenLogprob(token=t, logprob=v if v is not None else 0.0)
                        for t, v in zip(lp["tokens"], lp.get("token_logprobs") or [], strict=False)
                    ]
            choices.append(
                Choice(index=len(choices), text=text, finish_reason=c.get("finish_reason"), logprobs=logprobs)
            )
        usage = Usage()
        if payload.get("usage"):
            raw_usage = payload["usage"]
            usage = Usage(
                prompt_tokens=raw_usage.get("prompt_tokens") or 0,
                completion_tokens=raw_usage.get("completion_tokens") or 0,
            )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        if isinstance(exc, LLMError):
            raise
        raise RetryableLLMError(
            f"malformed response from {endpoint}: {type(exc).__name__}: {short(str(exc))}", endpoint=endpoint
        ) from None
    return choices, usage


async def close_all(transports: list[HttpTransport]) -> None:
    await asyncio.gather(*(t.aclose() for t in transports), return_exceptions=True)
