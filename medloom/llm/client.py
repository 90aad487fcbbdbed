"""The LLM client: thin layers around a transport, outermost first.

``generate``: de-duplication of identical calls in flight → request cache → retries → the endpoint
pool (routing, health, rate limit) → the transport (aiohttp by default; ``MockTransport`` in
process). ``embed`` goes through the same cache, retry, pool and transport. Every response is
accounted in the ledger.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from medloom.core.budget import BudgetLedger
from medloom.core.calls import Choice, EmbeddingResponse, LLMRequest, LLMResponse, Usage
from medloom.core.errors import LLMError, RetryableLLMError
from medloom.llm.accounting import TokenLedger
from medloom.llm.cache import RequestCache
from medloom.llm.dedup import InflightDedup
from medloom.llm.dispatch import EndpointDispatcher, Lease
from medloom.llm.http import AiohttpTransport
from medloom.llm.pool import EndpointPool, SharedPools
from medloom.llm.redact import redact_choices
from medloom.llm.retry import RetryPolicy
from medloom.llm.settings import EndpointConfig, LLMSettings
from medloom.llm.transport import Transport
from medloom.llm.wire import classify, parse_choices, parse_embeddings, request_body

Tags = Mapping[str, str]
"""Who makes a call (``agent``, ``node``, ``item``): handed to the transport, never sent to a
server. ``item`` is also the routing affinity: under ``llm.routing: sticky`` the calls of one item
go to one endpoint, whose prefix cache then holds the item's shared prompt parts."""

AFFINITY_TAG = "item"


def _affinity(tags: Tags | None) -> str | None:
    """The key sticky routing keeps a call's endpoint by: the ``item`` tag, when there is one."""
    return tags.get(AFFINITY_TAG) if tags else None


_Samples = tuple[list[Choice], Usage, str | None, int, list[str]]


class LLMClient:
    """One client for every model and endpoint of a run.

    >>> client = LLMClient([EndpointConfig(base_url="http://127.0.0.1:8000/v1")])
    >>> response = await client.generate(LLMRequest(model="m", prompt="Q: ...", n=3))
    >>> vectors = (await client.embed(["a text"], model="emb")).vectors
    """

    def __init__(
        self,
        endpoints: list[EndpointConfig],
        settings: LLMSettings | None = None,
        *,
        cache: RequestCache | None = None,
        transport: Transport | None = None,
        budget: BudgetLedger | None = None,
        pools: SharedPools | None = None,
    ):
        """``budget`` is charged with what each call pays (see :mod:`medloom.core.budget`);
        ``pools``: take the endpoint pool from there, shared with other clients over the same
        endpoints (their per-endpoint concurrency then counts every client's calls)."""
        self.settings = settings or LLMSettings()
        named = [
            e if e.name else e.model_copy(update={"name": f"endpoint{i}"}) for i, e in enumerate(endpoints)
        ]
        s = self.settings
        if pools is not None:
            self.pool = pools.get(named, s.health, routing=s.routing, sticky_slack=s.sticky_slack)
        else:
            self.pool = EndpointPool(named, s.health, routing=s.routing, sticky_slack=s.sticky_slack)
        self.transport: Transport = transport if transport is not None else AiohttpTransport()
        self.dispatcher = EndpointDispatcher(self.pool, self.transport, self.settings.rate_limit_rps)
        self.retry = RetryPolicy(self.settings.retry)
        self.cache = cache
        self._owns_cache = False  # a cache opened by from_urls is closed with the client
        self.ledger = TokenLedger(self.settings.prices, budget)
        self._dedup: InflightDedup[LLMResponse] = InflightDedup()

    @classmethod
    def from_urls(
        cls,
        urls: list[str],
        settings: LLMSettings | None = None,
        *,
        cache_path: str | Path | None = None,
        api_key_env: str | None = None,
        transport: Transport | None = None,
    ) -> LLMClient:
        """A client over base URLs, optionally with a cache file and the environment variable
        holding their API key. ``async with LLMClient.from_urls([...]) as client:`` closes it."""
        endpoints = [
            EndpointConfig(name=f"endpoint{i}", base_url=u, api_key_env=api_key_env)
            for i, u in enumerate(urls)
        ]
        cache = RequestCache(cache_path) if cache_path else None
        client = cls(endpoints, settings, cache=cache, transport=transport)
        client._owns_cache = cache is not None
        return client

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- public API -------------------------------------------------------------------------

    async def generate(
        self, request: LLMRequest, *, endpoints: list[str] | None = None, tags: Tags | None = None
    ) -> LLMResponse:
        """All ``request.n`` samples: cached ones from the cache, the rest from an endpoint.

        With the cache on, identical requests in flight at the same time are sent once.
        """
        if self.cache is None:
            return await self._generate(request, endpoints, tags)
        key = f"{request.cache_key(request.n)}:{request.n}:{endpoints}"
        return await self._dedup.run(key, lambda: self._generate(request, endpoints, tags), self._shared)

    async def score_prompts(
        self,
        model: str,
        prompts: Sequence[str],
        *,
        endpoints: list[str] | None = None,
        tags: Tags | None = None,
    ) -> list[tuple[LLMRequest, LLMResponse]]:
        """Prompt log-probabilities of several completion prompts in one request (``echo`` with
        ``max_tokens: 0`` and a list of prompts, as vLLM takes them); each prompt is cached on its
        own. Returns, per prompt, its single-prompt request and its response (the batch's usage is
        on the first fetched one)."""
        requests = [LLMRequest(model=model, prompt=p, max_tokens=0, echo=True, logprobs=0) for p in prompts]
        found: dict[int, Choice] = {}
        if self.cache is not None:
            for i, r in enumerate(requests):
                hit = self.cache.get_many(r, 1).get(0)
                if hit is not None:
                    found[i] = hit
        missing = [i for i in range(len(requests)) if i not in found]
        started = time.perf_counter()
        fresh: dict[int, Choice] = {}
        usage, attempts = Usage(), 0
        endpoint: str | None = None
        errors: list[str] = []
        if missing:
            batch = [prompts[i] for i in missing]

            async def work(lease: Lease) -> tuple[list[Choice], Usage]:
                body = request_body(requests[missing[0]], 1, lease.endpoint.config) | {"prompt": batch}
                payload = await lease.post("/completions", body, tags)
                choices, used = parse_choices(payload, "completion", lease.endpoint.name)
                if len(choices) != len(batch):
                    raise RetryableLLMError(
                        f"{lease.endpoint.name} returned {len(choices)} choices for {len(batch)} prompts",
                        endpoint=lease.endpoint.name,
                    )
                return redact_choices(choices, lease.secrets()), used

            async def once() -> tuple[tuple[list[Choice], Usage], str]:
                return await self.dispatcher.call(model, endpoints, work, _affinity(tags))

            try:
                ((choices, usage), endpoint), attempts, errors = await self.retry.call(once)
            except LLMError:
                self.ledger.record_failure(model)
                raise
            for i, choice in zip(missing, choices, strict=True):
                fresh[i] = choice.model_copy(update={"index": 0})
                if self.cache is not None:
                    self.cache.put(requests[i], 0, fresh[i])
        latency = time.perf_counter() - started
        out: list[tuple[LLMRequest, LLMResponse]] = []
        for i, request in enumerate(requests):
            first = bool(missing) and i == missing[0]
            response = LLMResponse(
                model=model,
                choices=[found[i].model_copy(update={"cache_hit": True}) if i in found else fresh[i]],
                usage=usage if first else Usage(),
                latency_s=latency,
                endpoint=endpoint if i in fresh else None,
                attempts=attempts if i in fresh else 0,
                errors=errors if first else [],
            )
            self.ledger.record(response)
            out.append((request, response))
        return out

    async def embed(
        self,
        texts: Sequence[str],
        model: str,
        *,
        endpoints: list[str] | None = None,
        tags: Tags | None = None,
        batch_size: int = 64,
    ) -> EmbeddingResponse:
        """Embeddings of ``texts`` in order: cached ones from the cache, each distinct missing
        text once, ``batch_size`` texts per request (each request retried on its own)."""
        started = time.perf_counter()
        vectors: dict[str, list[float]] = {}
        if self.cache is not None:
            vectors = self.cache.get_embeddings(model, texts)
        cached = sum(1 for t in texts if t in vectors)
        missing = list(dict.fromkeys(t for t in texts if t not in vectors))
        usage = Usage()
        endpoint: str | None = None
        attempts = 0
        errors: list[str] = []
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            try:
                (found, part_usage, endpoint), tries, retried = await self.retry.call(
                    functools.partial(self._embed_once, batch, model, endpoints, tags)
                )
            except LLMError:
                self.ledger.record_failure(model)
                raise
            usage += part_usage
            attempts = max(attempts, tries)
            errors += retried
            vectors.update(zip(batch, found, strict=True))
            if self.cache is not None:
                self.cache.put_embeddings(model, dict(zip(batch, found, strict=True)))
        response = EmbeddingResponse(
            model=model,
            vectors=[vectors[t] for t in texts],
            usage=usage,
            inputs=len(texts),
            cached=cached,
            latency_s=time.perf_counter() - started,
            endpoint=endpoint,
            attempts=attempts,
            errors=errors,
        )
        self.ledger.record_embedding(response)
        return response

    def with_endpoints(self, endpoints: list[EndpointConfig]) -> LLMClient:
        """A client over other endpoints sharing this one's transport, cache, settings and ledger
        (e.g. a separate embeddings API)."""
        other = LLMClient(endpoints, self.settings, cache=self.cache, transport=self.transport)
        other.ledger = self.ledger
        return other

    async def discover_models(self) -> dict[str, list[str]]:
        """Ask endpoints without a configured model list what they serve (``/v1/models``)."""
        found: dict[str, list[str]] = {}
        for ep in self.pool.endpoints:
            if ep.config.models is not None:
                found[ep.name] = list(ep.config.models)
                continue
            self.dispatcher.headers(ep)  # outside the try: a missing API key stays a ValueError
            try:
                page = await self.dispatcher.request(ep, "GET", "/models")
                ep.discovered_models = [str(m["id"]) for m in page.get("data") or []]
            except Exception as exc:
                raise classify(exc, ep.name) from exc
            found[ep.name] = ep.discovered_models
        return found

    async def aclose(self) -> None:
        """Close the transport (and a cache file ``from_urls`` opened)."""
        await self.transport.aclose()
        if self._owns_cache and self.cache is not None:
            self.cache.close()

    # -- the layers -------------------------------------------------------------------------

    def _shared(self, first: LLMResponse) -> LLMResponse:
        """What a caller that waited on an identical call in flight gets: its samples, free."""
        shared = first.model_copy(
            update={
                "choices": [c.model_copy(update={"cache_hit": True}) for c in first.choices],
                "usage": Usage(),
                "latency_s": 0.0,
            }
        )
        self.ledger.record(shared)
        return shared

    async def _generate(
        self, request: LLMRequest, endpoints: list[str] | None, tags: Tags | None
    ) -> LLMResponse:
        """The cache layer: samples found in the cache, the missing ones fetched and stored."""
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
                request, len(missing), endpoints, tags
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

    async def _fetch_samples(
        self, request: LLMRequest, count: int, only: list[str] | None, tags: Tags | None
    ) -> _Samples:
        """``count`` samples: one request with ``n`` where every candidate endpoint supports it,
        otherwise ``count`` requests that each take their own slot (and retry on their own)."""
        if count == 1 or all(ep.config.supports_n for ep in self.pool.candidates(request.model, only)):
            return await self._fetch(request, count, only, tags)
        parts = await asyncio.gather(*(self._fetch(request, 1, only, tags) for _ in range(count)))
        choices = [c for part in parts for c in part[0]]
        usage = sum((part[1] for part in parts), Usage())
        errors = [e for part in parts for e in part[4]]
        return choices, usage, parts[0][2], max(part[3] for part in parts), errors

    async def _fetch(
        self, request: LLMRequest, count: int, only: list[str] | None, tags: Tags | None
    ) -> _Samples:
        """The retry layer: ``count`` fresh samples, retried on retryable failures."""
        try:
            (choices, usage, endpoint), attempts, errors = await self.retry.call(
                lambda: self._sample_once(request, count, only, tags)
            )
        except LLMError:
            self.ledger.record_failure(request.model)
            raise
        return choices, usage, endpoint, attempts, errors

    async def _sample_once(
        self, request: LLMRequest, count: int, only: list[str] | None, tags: Tags | None
    ) -> tuple[list[Choice], Usage, str]:
        """The pool layer: one attempt on one endpoint, in one call where it supports ``n``."""

        async def work(lease: Lease) -> tuple[list[Choice], Usage]:
            config = lease.endpoint.config
            path = "/chat/completions" if request.mode == "chat" else "/completions"
            if config.supports_n or count == 1:
                payload = await lease.post(path, request_body(request, count, config), tags)
                choices, usage = parse_choices(payload, request.mode, lease.endpoint.name)
            else:
                # One slot, one request at a time: never more in flight than max_concurrency.
                choices, usage = [], Usage()
                for _ in range(count):
                    payload = await lease.post(path, request_body(request, 1, config), tags)
                    part, part_usage = parse_choices(payload, request.mode, lease.endpoint.name)
                    choices += part
                    usage += part_usage
            choices = redact_choices(choices, lease.secrets())  # before anything caches or records it
            if len(choices) < count:
                raise RetryableLLMError(
                    f"{lease.endpoint.name} returned {len(choices)} of {count} samples",
                    endpoint=lease.endpoint.name,
                )
            return choices, usage

        (choices, usage), endpoint = await self.dispatcher.call(request.model, only, work, _affinity(tags))
        return choices, usage, endpoint

    async def _embed_once(
        self, texts: list[str], model: str, only: list[str] | None, tags: Tags | None
    ) -> tuple[list[list[float]], Usage, str]:
        async def work(lease: Lease) -> tuple[list[list[float]], Usage]:
            payload = await lease.post("/embeddings", {"model": model, "input": texts}, tags)
            return parse_embeddings(payload, len(texts), lease.endpoint.name)

        (vectors, usage), endpoint = await self.dispatcher.call(model, only, work, _affinity(tags))
        return vectors, usage, endpoint
