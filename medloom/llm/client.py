"""The LLM client: cache, routing over an endpoint pool, rate limit, retries, accounting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asyncio_throttle import Throttler
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from medloom.core.calls import Choice, LLMRequest, LLMResponse, Usage
from medloom.core.errors import LLMError, RetryableLLMError
from medloom.llm.accounting import TokenLedger
from medloom.llm.cache import RequestCache
from medloom.llm.pool import EndpointPool, EndpointState
from medloom.llm.redact import configured_secrets, redact_choices, redact_error
from medloom.llm.settings import EndpointConfig, LLMSettings
from medloom.llm.transport import HttpTransport, close_all, parse_json_choices
from medloom.llm.wire import classify, is_endpoint_fault, request_body

ResponseHook = Callable[[LLMRequest, LLMResponse], None]


class LLMClient:
    """One client for every model and endpoint of a run.

    >>> client = LLMClient([EndpointConfig(base_url="http://127.0.0.1:8000/v1")])
    >>> response = await client.generate(LLMRequest(model="m", prompt="Q: ...", n=3))
    """

    def __init__(
        self,
        endpoints: list[EndpointConfig],
        settings: LLMSettings | None = None,
        *,
        cache: RequestCache | None = None,
    ):
        self.settings = settings or LLMSettings()
        named = [
            e if e.name else e.model_copy(update={"name": f"endpoint{i}"}) for i, e in enumerate(endpoints)
        ]
        self.pool = EndpointPool(named, self.settings.health)
        self.cache = cache
        self._owns_cache = False  # a cache opened by from_urls is closed with the client
        self.ledger = TokenLedger(self.settings.prices)
        self._clients: dict[str, HttpTransport] = {}
        self._inflight: dict[str, asyncio.Future[LLMResponse]] = {}
        self._throttler: Throttler | None = None
        if self.settings.rate_limit_rps:
            rps = self.settings.rate_limit_rps
            self._throttler = (
                Throttler(rate_limit=int(rps), period=1.0)
                if float(rps).is_integer()
                else Throttler(rate_limit=1, period=1.0 / rps)
            )

    @classmethod
    def from_urls(
        cls,
        urls: list[str],
        settings: LLMSettings | None = None,
        *,
        cache_path: str | Path | None = None,
        api_key_env: str | None = None,
    ) -> LLMClient:
        """A client over base URLs, optionally with a cache file and the environment variable
        holding their API key. ``async with LLMClient.from_urls([...]) as client:`` closes it."""
        endpoints = [
            EndpointConfig(name=f"endpoint{i}", base_url=u, api_key_env=api_key_env)
            for i, u in enumerate(urls)
        ]
        client = cls(endpoints, settings, cache=RequestCache(cache_path) if cache_path else None)
        client._owns_cache = client.cache is not None
        return client

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- public API -------------------------------------------------------------------------

    async def generate(self, request: LLMRequest, *, endpoints: list[str] | None = None) -> LLMResponse:
        """All ``request.n`` samples: cached ones from the cache, the rest from an endpoint.

        With the cache on, identical requests in flight at the same time are sent once.
        """
        if self.cache is None:
            return await self._generate(request, endpoints)
        key = f"{request.cache_key(request.n)}:{request.n}:{endpoints}"
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                first = await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise  # this caller was cancelled, not the one it waited for
                return await self.generate(request, endpoints=endpoints)  # leader cancelled: go again
            shared = first.model_copy(
                update={
                    "choices": [c.model_copy(update={"cache_hit": True}) for c in first.choices],
                    "usage": Usage(),
                    "latency_s": 0.0,
                }
            )
            self.ledger.record(shared)
            return shared
        future: asyncio.Future[LLMResponse] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            response = await self._generate(request, endpoints)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()  # waiters were not cancelled themselves: they retry
            else:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(response)
            return response
        finally:
            del self._inflight[key]

    async def _generate(self, request: LLMRequest, endpoints: list[str] | None) -> LLMResponse:
        started = time.perf_counter()
        cached = self.cache.get_many(request, request.n) if self.cache is not None else {}
        missing = [i for i in range(request.n) if i not in cached]
        choices: dict[int, Choice] = dict(cached)
        usage = Usage()
        endpoint_name: str | None = None
        attempts = 0
        errors: list[str] = []
        if missing:
            fresh, usage, endpoint_name, attempts, errors = await self._fetch_samples(
                request, len(missing), endpoints
            )
            for index, choice in zip(missing, fresh, strict=False):
                choice = choice.model_copy(update={"index": index})
                choices[index] = choice
                if self.cache is not None:
                    self.cache.put(request, index, choice)
        response = LLMResponse(
            model=request.model,
            choices=[choices[i] for i in sorted(choices)],
            usage=usage,
            latency_s=time.perf_counter() - started,
            endpoint=endpoint_name,
            attempts=attempts,
            errors=errors,
        )
        self.ledger.record(response)
        return response

    async def discover_models(self) -> dict[str, list[str]]:
        """Ask endpoints without a configured model list what they serve (``/v1/models``)."""
        found: dict[str, list[str]] = {}
        for ep in self.pool.endpoints:
            if ep.config.models is not None:
                found[ep.name] = list(ep.config.models)
                continue
            client = self._client(ep)  # outside the try: a missing API key stays a ValueError
            try:
                page = await client.get("/models")
                ep.discovered_models = [str(m["id"]) for m in page.get("data") or []]
            except Exception as exc:
                raise classify(exc, ep.name) from exc
            found[ep.name] = ep.discovered_models
        return found

    async def aclose(self) -> None:
        """Close the HTTP sessions (and a cache file ``from_urls`` opened)."""
        await close_all(list(self._clients.values()))
        self._clients.clear()
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    # -- internals --------------------------------------------------------------------------

    def _client(self, ep: EndpointState) -> HttpTransport:
        client = self._clients.get(ep.name)
        if client is None:
            client = HttpTransport(ep.name, ep.config.base_url, ep.config.api_key(), ep.config.timeout_s)
            self._clients[ep.name] = client
        return client

    def _secrets(self) -> list[str]:
        return configured_secrets(ep.config.api_key_env for ep in self.pool.endpoints)

    def _wait(self, state: RetryCallState) -> float:
        retry = self.settings.retry
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableLLMError) and exc.retry_after is not None:
            return min(exc.retry_after, retry.max_retry_after_s)
        backoff = wait_exponential_jitter(initial=retry.initial_backoff_s, max=retry.max_backoff_s)
        return float(backoff(state))

    async def _fetch_samples(
        self, request: LLMRequest, count: int, only: list[str] | None
    ) -> tuple[list[Choice], Usage, str | None, int, list[str]]:
        """``count`` samples: one request with ``n`` where every candidate endpoint supports it,
        otherwise ``count`` requests that each take their own slot (and retry on their own)."""
        if count == 1 or all(ep.config.supports_n for ep in self.pool.candidates(request.model, only)):
            return await self._fetch(request, count, only)
        parts = await asyncio.gather(*(self._fetch(request, 1, only) for _ in range(count)))
        choices = [c for part in parts for c in part[0]]
        usage = sum((part[1] for part in parts), Usage())
        errors = [e for part in parts for e in part[4]]
        return choices, usage, parts[0][2], max(part[3] for part in parts), errors

    async def _fetch(
        self, request: LLMRequest, count: int, only: list[str] | None
    ) -> tuple[list[Choice], Usage, str | None, int, list[str]]:
        """``count`` fresh samples, in one call where the endpoint supports ``n``."""
        errors: list[str] = []
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.retry.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(RetryableLLMError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        return (*await self._call_once(request, count, only), attempts, errors)
                    except LLMError as err:
                        errors.append(str(err))
                        raise
        except LLMError:
            self.ledger.record_failure(request.model)
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(
        self, request: LLMRequest, count: int, only: list[str] | None
    ) -> tuple[list[Choice], Usage, str]:
        ep = await self.pool.acquire(request.model, only)
        probe = ep.ejected  # only a probe may take a slot on an endpoint out of rotation
        try:
            client = self._client(ep)  # a missing API key is a config error: raise it unretried
        except BaseException:
            await self.pool.release(ep, healthy=None, probe=probe)
            raise
        healthy: bool | None = None
        error: str | None = None
        try:
            if self._throttler is not None:
                async with self._throttler:
                    pass
            if ep.config.supports_n or count == 1:
                choices, usage = await self._create(client, request, count, ep.config)
            else:
                # One slot, one request at a time: never more in flight than max_concurrency.
                choices, usage = [], Usage()
                for _ in range(count):
                    part, part_usage = await self._create(client, request, 1, ep.config)
                    choices += part
                    usage += part_usage
            choices = redact_choices(choices, self._secrets())  # before anything caches or records it
            if len(choices) < count:
                raise RetryableLLMError(
                    f"{ep.name} returned {len(choices)} of {count} samples", endpoint=ep.name
                )
            healthy = True
            return choices, usage, ep.name
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            err = classify(exc, ep.name)
            healthy = False if is_endpoint_fault(err) else None
            leaked = redact_error(err, self._secrets())  # servers may echo the key back
            error = str(err)
            if leaked:
                raise err from None  # the original exception still quotes the key
            raise err from exc
        finally:
            await self.pool.release(ep, healthy=healthy, probe=probe, error=error)

    @staticmethod
    async def _create(
        client: HttpTransport, request: LLMRequest, n: int, endpoint: EndpointConfig
    ) -> tuple[list[Choice], Usage]:
        body: dict[str, Any] = request_body(request, n, endpoint)
        path = "/chat/completions" if request.mode == "chat" else "/completions"
        payload = await client.post(path, body)
        return parse_json_choices(payload, request.mode, client.endpoint)
