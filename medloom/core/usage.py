"""One usage tally for LLM calls: the client's per-model ledger, the engine's per-node stats, the
report's per-model usage, the stats' node × model rows and eval's per-item cost all count with it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from medloom.core.calls import EmbeddingResponse, LLMResponse, Usage


class Price(BaseModel):
    """Price in currency units per million tokens."""

    model_config = ConfigDict(extra="forbid")

    prompt: float = 0.0
    completion: float = 0.0


def cost_of(usage: Usage, price: Price | None) -> float:
    """What ``usage`` costs at ``price`` (0 without a price)."""
    if price is None:
        return 0.0
    return (usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion) / 1e6


class UsageTally(BaseModel):
    """Calls, samples, tokens and cost, summed over any set of LLM calls."""

    calls: int = 0
    """Calls that returned (served from the cache or not)."""
    cached_calls: int = 0
    """Calls whose every sample came from the cache (or from an identical call in flight)."""
    failed_calls: int = 0
    """Calls that ended in an error after their retries."""
    samples: int = 0
    """Completions returned (``n`` per call), or texts embedded."""
    cached_samples: int = 0
    """Of those, the ones served from the cache."""
    prompt_tokens: int = 0
    """Prompt tokens paid for (cache hits cost nothing)."""
    completion_tokens: int = 0
    """Completion tokens paid for."""
    cost: float = 0.0
    """At ``llm.prices`` (0 for models without a price)."""

    def add(self, response: LLMResponse | EmbeddingResponse | None, price: Price | None = None) -> None:
        """Count one call; ``None`` counts a call that failed."""
        if response is None:
            self.failed_calls += 1
            return
        if isinstance(response, EmbeddingResponse):  # one sample per text embedded
            self.calls += 1
            self.cached_calls += response.cache_hit
            self.samples += response.inputs
            self.cached_samples += response.cached
            self.prompt_tokens += response.usage.prompt_tokens
            self.cost += cost_of(response.usage, price)
            return
        self.calls += 1
        self.cached_calls += response.cache_hit
        self.samples += len(response.choices)
        self.cached_samples += sum(c.cache_hit for c in response.choices)
        self.prompt_tokens += response.usage.prompt_tokens
        self.completion_tokens += response.usage.completion_tokens
        self.cost += cost_of(response.usage, price)

    def merge(self, other: UsageTally, sign: int = 1) -> None:
        """Add ``other``'s counts to this tally (``sign=-1`` takes them away again)."""
        mine = type(self).model_fields
        for name, value in other:
            if name in mine and isinstance(value, int | float) and not isinstance(value, bool):
                setattr(self, name, getattr(self, name) + sign * value)
