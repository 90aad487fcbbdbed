"""Token and cost accounting per model (the engine also keeps it per node and per run)."""

from __future__ import annotations

from collections import defaultdict

from pydantic import BaseModel

from medloom.core.calls import EmbeddingResponse, LLMResponse, Usage
from medloom.llm.settings import Price


class ModelTally(BaseModel):
    calls: int = 0
    samples: int = 0
    cached_samples: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def add(self, response: LLMResponse, price: Price | None) -> None:
        self.calls += 1
        self.samples += len(response.choices)
        self.cached_samples += sum(c.cache_hit for c in response.choices)
        self.prompt_tokens += response.usage.prompt_tokens
        self.completion_tokens += response.usage.completion_tokens
        self.cost += cost_of(response.usage, price)


def cost_of(usage: Usage, price: Price | None) -> float:
    if price is None:
        return 0.0
    return (usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion) / 1e6


class TokenLedger:
    """Running totals by model name."""

    def __init__(self, prices: dict[str, Price] | None = None):
        self.prices = prices or {}
        self.by_model: dict[str, ModelTally] = defaultdict(ModelTally)

    def record(self, response: LLMResponse) -> None:
        self.by_model[response.model].add(response, self.prices.get(response.model))

    def record_embedding(self, response: EmbeddingResponse) -> None:
        tally = self.by_model[response.model]
        tally.calls += 1
        tally.samples += len(response.vectors)
        tally.cached_samples += response.cached
        tally.prompt_tokens += response.usage.prompt_tokens
        tally.cost += cost_of(response.usage, self.prices.get(response.model))

    def record_failure(self, model: str) -> None:
        self.by_model[model].failures += 1

    @property
    def completion_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.by_model.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.by_model.values())

    @property
    def calls(self) -> int:
        return sum(t.calls for t in self.by_model.values())
